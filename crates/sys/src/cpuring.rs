//! [`CpuRings`]: the user-space side of per-CPU rings that BPF programs
//! write records into in place, one region per CPU in a `BPF_F_MMAPABLE`
//! array map (element `cpu`).
//!
//! The protocol (the layout's offsets come from the caller, [`RingLayout`]):
//! a region holds a producer position `head`, a busy count, the clock
//! reading of its latest writer and a consumer position `tail` (each a
//! `u64`, the two sides' on separate cache lines),
//! then a data area of a power-of-two size followed by slack. Positions
//! count bytes ever written; a record at position `p` starts at data offset
//! `p & (size - 1)` as a `u32` length, 4 bytes of padding and the record,
//! padded to 8 bytes, and lies whole in memory (running on into the slack
//! when it starts near the end). Only the probe on that CPU writes a
//! record and then stores `head` (x86-64 keeps stores in program order, so
//! the record is complete when `head` covers it); the consumer reads up to
//! `head` and frees space by storing `tail`. A probe that finds its region
//! filling up wakes the consumer once and raises the region's `wake` word;
//! the consumer lowers it when it gives space back, so the next fill wakes
//! it again.

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::SysError;
use crate::bpf::{Map, MapType};
use crate::sys;

/// Where the fields of a region are, in bytes from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// The producer position.
    pub head: usize,
    /// The busy count.
    pub busy: usize,
    /// The clock reading of the latest writer.
    pub pending: usize,
    /// The consumer position.
    pub tail: usize,
    /// Raised by a probe that woke the consumer, lowered by the consumer.
    pub wake: usize,
    /// The data area.
    pub data: usize,
    /// Bytes of each record's frame before it (its length and padding).
    pub frame: usize,
}

/// What a region showed when it was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The consumer position.
    pub tail: u64,
    /// The producer position.
    pub head: u64,
    /// Whether a probe was writing (its busy count taken), read first.
    pub busy: bool,
    /// The latest writer's clock reading, read after `busy` and before
    /// `head`.
    pub pending: u64,
}

/// The consumer of one map's per-CPU rings.
#[derive(Debug)]
pub struct CpuRings {
    _fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    layout: RingLayout,
    /// Bytes of each region (the map's value size, 8-aligned).
    stride: usize,
    /// Size of each data area (a power of two).
    size: usize,
    cpus: usize,
}

// SAFETY: CpuRings exclusively owns its fd and mapping; the raw pointer is
// not shared with any other Rust object, so moving it between threads is
// fine.
unsafe impl Send for CpuRings {}

impl CpuRings {
    /// Maps `map`, an mmapable array whose `max_entries` regions have a
    /// data area of `size` bytes at `layout.data`. `InvalidInput` when the
    /// map is not an array, `size` not a power of two or the regions
    /// smaller than the layout needs.
    pub fn new(map: &Map, layout: RingLayout, size: usize) -> Result<CpuRings, SysError> {
        const CALL: &str = "mmap(cpu rings)";
        if map.map_type() != MapType::Array {
            return Err(SysError::invalid_input(CALL, "not an array map"));
        }
        let stride = (map.value_size() as usize).next_multiple_of(8);
        let fields_fit = [
            layout.head,
            layout.busy,
            layout.pending,
            layout.tail,
            layout.wake,
        ]
        .iter()
        .all(|&f| f.is_multiple_of(8) && f + 8 <= layout.data);
        if !size.is_power_of_two()
            || !fields_fit
            || !layout.data.is_multiple_of(8)
            || layout.frame < 4
            || layout.data.checked_add(size).is_none_or(|end| end > stride)
        {
            return Err(SysError::invalid_input(
                CALL,
                format!("regions of {stride} bytes cannot hold {size} bytes of data"),
            ));
        }
        let cpus = map.max_entries() as usize;
        let len = stride
            .checked_mul(cpus)
            .map(|l| l.next_multiple_of(crate::page_size()))
            .ok_or_else(|| SysError::invalid_input(CALL, "rings too large"))?;
        let fd = map.dup_fd()?;
        let ptr = sys::mmap_shared(fd.as_fd(), len, true, 0).map_err(|e| SysError::new(CALL, e))?;
        Ok(CpuRings {
            _fd: fd,
            ptr,
            len,
            layout,
            stride,
            size,
            cpus,
        })
    }

    /// The number of regions (one per possible CPU).
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// The `u64` at `field` of region `cpu`, as an atomic.
    fn word(&self, cpu: usize, field: usize) -> &AtomicU64 {
        assert!(cpu < self.cpus && field + 8 <= self.layout.data && field.is_multiple_of(8));
        // SAFETY: cpu < cpus and field + 8 <= data <= stride, so the word lies
        // inside the mapping (len >= cpus * stride); the mapping is page
        // aligned and stride and field are multiples of 8, so it is
        // 8-aligned. The mapping lives as long as `self`. Every access to
        // these shared words, the probe's and ours, is a single aligned
        // 8-byte access, which AtomicU64 models.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(cpu * self.stride + field).cast()) }
    }

    /// Looks at region `cpu`: the busy count first, then the latest
    /// writer's clock reading, then `head` (each acquire: the records
    /// before `head` are complete), and `tail`.
    pub fn window(&self, cpu: usize) -> Window {
        let busy = self.word(cpu, self.layout.busy).load(Ordering::Acquire) != 0;
        let pending = self.word(cpu, self.layout.pending).load(Ordering::Acquire);
        let head = self.word(cpu, self.layout.head).load(Ordering::Acquire);
        let tail = self.word(cpu, self.layout.tail).load(Ordering::Relaxed);
        Window {
            tail,
            head,
            busy,
            pending,
        }
    }

    /// The record at position `pos` of region `cpu`, which must lie in a
    /// [`window`](Self::window)'s `tail..head`, and the position after it.
    /// `None` when its length does not fit the region (not a record this
    /// protocol wrote). The slice borrows `self`, so it cannot outlive the
    /// next [`release`](Self::release).
    pub fn record(&self, cpu: usize, pos: u64) -> Option<(&[u8], u64)> {
        if cpu >= self.cpus {
            return None;
        }
        let start = self.layout.data + (pos as usize & (self.size - 1));
        let room = self.stride.checked_sub(start)?;
        if room < self.layout.frame {
            return None;
        }
        let base = cpu * self.stride + start;
        // SAFETY: base + 4 <= (cpu + 1) * stride <= len and base is 8-aligned
        // (data, stride and positions are multiples of 8), so the length
        // word is inside the mapping. The probe wrote it before storing the
        // head that covers `pos` (acquired in `window`) and does not write
        // below `tail` again until we release.
        let len = unsafe {
            std::sync::atomic::AtomicU32::from_ptr(self.ptr.as_ptr().add(base).cast())
                .load(Ordering::Relaxed)
        } as usize;
        if len > room - self.layout.frame {
            return None;
        }
        // SAFETY: base + frame + len <= (cpu + 1) * stride (checked above),
        // so the slice is inside the mapping; the bytes are complete (as
        // for the length) and stay untouched until `release` moves `tail`
        // past them, which needs `&mut self` while this borrow is alive.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(base + self.layout.frame), len)
        };
        let next = pos + (self.layout.frame + len).next_multiple_of(8) as u64;
        Some((bytes, next))
    }

    /// Gives the bytes of region `cpu` before `pos` back to its producer,
    /// and lowers its `wake` word when a probe raised it (so that the
    /// next time the region fills, the consumer is woken again).
    pub fn release(&mut self, cpu: usize, pos: u64) {
        self.word(cpu, self.layout.tail)
            .store(pos, Ordering::Release);
        let wake = self.word(cpu, self.layout.wake);
        if wake.load(Ordering::Relaxed) != 0 {
            wake.store(0, Ordering::Relaxed);
        }
    }

    /// Bytes written but not yet consumed, over all regions.
    pub fn pending_bytes(&self) -> u64 {
        (0..self.cpus)
            .map(|cpu| {
                let w = self.window(cpu);
                w.head.saturating_sub(w.tail)
            })
            .sum()
    }

    /// Size of each region's data area.
    pub fn capacity(&self) -> usize {
        self.size
    }
}

impl Drop for CpuRings {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping made in `new`, unmapped
        // only here; every reference handed out borrows `self`.
        unsafe { sys::munmap(self.ptr, self.len) };
    }
}
