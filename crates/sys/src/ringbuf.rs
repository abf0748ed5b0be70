//! [`RingBuf`]: the user-space consumer of a `BPF_MAP_TYPE_RINGBUF` map.
//!
//! Memory layout (kernel `kernel/bpf/ringbuf.c`, same protocol as libbpf's
//! `ringbuf.c`): page 0 of the map holds the consumer position and is mapped
//! read-write; page 1 holds the producer position and is followed by the data
//! area, mapped read-only *twice in a row* so that a record that wraps around
//! the end is still contiguous. Each record is an 8-byte header (`u32 len`
//! with `BUSY` bit 31 and `DISCARD` bit 30, then `u32` page offset) and the
//! sample, padded to 8 bytes. The producer publishes by clearing `BUSY` with
//! a release store; the consumer frees space by advancing the consumer
//! position with a release store.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::SysError;
use crate::bpf::{Map, MapType};
use crate::sys;

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HDR_SIZE: u64 = 8;

/// A shared mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(
        fd: BorrowedFd<'_>,
        len: usize,
        writable: bool,
        offset: usize,
    ) -> Result<Self, SysError> {
        let ptr = sys::mmap_shared(fd, len, writable, offset)
            .map_err(|e| SysError::new("mmap(ringbuf)", e))?;
        Ok(Mapping { ptr, len })
    }

    /// The `u64` at byte `off`, as an atomic.
    ///
    /// # Safety
    ///
    /// `off + 8 <= len` and `off` a multiple of 8.
    unsafe fn u64_at(&self, off: usize) -> &AtomicU64 {
        // SAFETY: per the contract the 8 bytes lie inside the mapping, which
        // is page aligned, so the address is 8-aligned; the mapping lives as
        // long as `self`. AtomicU64 has the layout of u64, and all accesses to
        // this shared word (ours and the kernel's) are atomic.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(off).cast::<u64>()) }
    }

    /// The `u32` at byte `off`, as an atomic.
    ///
    /// # Safety
    ///
    /// `off + 4 <= len` and `off` a multiple of 4.
    unsafe fn u32_at(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as for u64_at, with 4 bytes and 4-byte alignment.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping made in `new`, unmapped only
        // here; the references handed out borrow `self`, so none outlives it.
        unsafe { sys::munmap(self.ptr, self.len) };
    }
}

/// Consumer of a `BPF_MAP_TYPE_RINGBUF` map (one consumer at a time).
///
/// Holds its own duplicate of the map fd, so the [`Map`] may be dropped. The
/// fd ([`raw_fd`](RingBuf::raw_fd)) is what to register with epoll: it is
/// readable while data is pending, and programs wake waiters according to
/// their submit flags (`BPF_RB_NO_WAKEUP` never wakes, `BPF_RB_FORCE_WAKEUP`
/// always does, 0 wakes when the consumer has caught up).
#[derive(Debug)]
pub struct RingBuf {
    fd: OwnedFd,
    /// Page 0: `consumer_pos` at offset 0.
    consumer: Mapping,
    /// Page 1 (`producer_pos` at offset 0), then the data area twice.
    producer: Mapping,
    page: usize,
    size: usize,
}

// SAFETY: RingBuf exclusively owns its fd and mappings; the raw pointers are
// not shared with any other Rust object, so moving it to another thread is
// fine.
unsafe impl Send for RingBuf {}
// SAFETY: the only `&self` accesses are atomic loads of the two positions;
// every write (`consume`) takes `&mut self`.
unsafe impl Sync for RingBuf {}

impl RingBuf {
    /// Maps the ring buffer `map`. `InvalidInput` if `map` is not a
    /// [`MapType::RingBuf`] map (or its size is not a power-of-two multiple
    /// of the page size, which the kernel already enforces).
    pub fn new(map: &Map) -> Result<RingBuf, SysError> {
        const CALL: &str = "mmap(ringbuf)";
        if map.map_type() != MapType::RingBuf {
            return Err(SysError::invalid_input(CALL, "not a ring buffer map"));
        }
        let page = crate::page_size();
        let size = map.max_entries() as usize;
        if !size.is_power_of_two() || !size.is_multiple_of(page) {
            return Err(SysError::invalid_input(
                CALL,
                format!("ring size {size} is not a power-of-two multiple of {page}"),
            ));
        }
        let data_len = size
            .checked_mul(2)
            .and_then(|d| d.checked_add(page))
            .ok_or_else(|| SysError::invalid_input(CALL, "ring too large"))?;
        let fd = map.dup_fd()?;
        let consumer = Mapping::new(fd.as_fd(), page, true, 0)?;
        let producer = Mapping::new(fd.as_fd(), data_len, false, page)?;
        Ok(RingBuf {
            fd,
            consumer,
            producer,
            page,
            size,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of a one-page mapping.
        unsafe { self.consumer.u64_at(0) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of a mapping of page + 2 * size bytes.
        unsafe { self.producer.u64_at(0) }
    }

    /// Hands every committed record to `f` in order, advancing the consumer
    /// position after each (release store) and skipping discarded ones.
    /// Stops at a record still being written (`BUSY`), when caught up with
    /// the producer position read at the start, or when `f` returns `false`
    /// (the position is then just after that record). Returns the number of
    /// records handed to `f`.
    ///
    /// The slice is only valid during the call of `f`: its space is given back
    /// to the producer right after.
    pub fn consume(&mut self, f: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let mask = self.size as u64 - 1;
        let data_start = self.page;
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        let prod = self.producer_pos().load(Ordering::Acquire);
        let mut handed = 0;
        // The consumer position is published in batches, not per record: the
        // producer reads it on every reservation, and a cache line written
        // here a million times a second would bounce between the CPUs.
        let publish_every = (self.size as u64 / 16).max(8);
        let mut published = cons;
        // Positions only grow and never differ by more than the ring size;
        // anything else means the pages are not what we think: stop.
        if !cons.is_multiple_of(8) || prod < cons || prod - cons > self.size as u64 {
            return 0;
        }
        while cons < prod {
            let off = (cons & mask) as usize;
            // SAFETY: off < size and 8-aligned (cons is), so the header's len
            // word lies within the first copy of the data area. The acquire
            // load pairs with the kernel's release store that clears BUSY.
            let len_word =
                unsafe { self.producer.u32_at(data_start + off) }.load(Ordering::Acquire);
            if len_word & BUSY != 0 {
                break;
            }
            let len = u64::from(len_word & !(BUSY | DISCARD));
            let total = (len + HDR_SIZE).next_multiple_of(8);
            if total > prod - cons {
                // A committed record cannot extend past the producer position.
                break;
            }
            let mut keep = true;
            if len_word & DISCARD == 0 {
                // SAFETY: off < size and off + 8 + len <= off + total <= off +
                // size < 2 * size, so the sample lies inside the doubly mapped
                // data area. The record is committed (BUSY clear, acquire
                // above), and the kernel does not touch it until the consumer
                // position moves past it, which happens only after `f`
                // returns; the slice cannot escape `f`.
                let sample = unsafe {
                    std::slice::from_raw_parts(
                        self.producer
                            .ptr
                            .as_ptr()
                            .add(data_start + off + HDR_SIZE as usize),
                        len as usize,
                    )
                };
                keep = f(sample);
                handed += 1;
            }
            cons += total;
            if cons - published >= publish_every {
                self.consumer_pos().store(cons, Ordering::Release);
                published = cons;
            }
            if !keep {
                break;
            }
        }
        if cons != published {
            self.consumer_pos().store(cons, Ordering::Release);
        }
        handed
    }

    /// Bytes produced (reserved, committed or not) but not yet consumed.
    pub fn pending_bytes(&self) -> u64 {
        let cons = self.consumer_pos().load(Ordering::Acquire);
        let prod = self.producer_pos().load(Ordering::Acquire);
        prod.saturating_sub(cons)
    }

    /// The ring buffer fd, for epoll.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Size of the data area in bytes (the map's `max_entries`).
    pub fn capacity(&self) -> usize {
        self.size
    }
}

impl AsFd for RingBuf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
