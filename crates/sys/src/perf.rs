//! `perf_event_open(2)`: [`PerfEvent`] owns one event fd, either
//!
//! - a uprobe (or uretprobe) on the `uprobe` PMU ([`PerfEvent::uprobe`]), to
//!   which a program is attached either with a `BPF_PERF_EVENT` link
//!   ([`crate::bpf::Link::perf_event`]) or with the `PERF_EVENT_IOC_SET_BPF`
//!   ioctl ([`PerfEvent::set_bpf`]). Closing the fd removes the probe: no
//!   tracefs entry is ever created;
//! - or a sampling clock ([`PerfEvent::cpu_clock_sampler`],
//!   [`PerfEvent::task_clock_sampler`]) that runs a
//!   [`ProgType::PerfEvent`](crate::bpf::ProgType::PerfEvent) program at a
//!   fixed frequency: [`Sampler`] for one event, [`CpuSamplers`] for one on
//!   every online CPU, which is what a stack sampler wants.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use crate::SysError;
use crate::bpf::Program;
use crate::sys::{self, PerfIoctl};

mod sampler;

pub use self::sampler::{CpuSamplers, Sampler, max_sample_rate};

/// Where the kernel publishes the dynamic PMU type of uprobes.
const UPROBE_TYPE_PATH: &str = "/sys/bus/event_source/devices/uprobe/type";

/// `struct perf_event_attr` as far as `PERF_ATTR_SIZE_VER7` (128 bytes),
/// with the fields the uprobe PMU and the software clocks read; everything
/// else stays 0. `sample_period` doubles as `sample_freq` when `flags` has
/// [`ATTR_FREQ`].
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    rest: [u64; 7],
}
/// `perf_event_attr.disabled`: created off, until `PERF_EVENT_IOC_ENABLE`.
const ATTR_DISABLED: u64 = 1 << 0;
/// `perf_event_attr.freq`: `sample_period` is a frequency in Hz.
const ATTR_FREQ: u64 = 1 << 10;
const _: () = {
    assert!(std::mem::offset_of!(PerfEventAttr, sample_period) == 16);
    assert!(std::mem::offset_of!(PerfEventAttr, flags) == 40);
    assert!(std::mem::offset_of!(PerfEventAttr, config) == 8);
    assert!(std::mem::offset_of!(PerfEventAttr, config1) == 56);
    assert!(std::mem::offset_of!(PerfEventAttr, config2) == 64);
    assert!(std::mem::size_of::<PerfEventAttr>() == 128);
};

/// The uprobe PMU type (8 on the reference machine), read once from sysfs.
pub fn uprobe_pmu_type() -> Result<u32, SysError> {
    static TYPE: OnceLock<u32> = OnceLock::new();
    if let Some(t) = TYPE.get() {
        return Ok(*t);
    }
    const CALL: &str = "read(/sys/bus/event_source/devices/uprobe/type)";
    let text = std::fs::read_to_string(UPROBE_TYPE_PATH).map_err(|e| SysError::new(CALL, e))?;
    let t = text.trim().parse::<u32>().map_err(|_| {
        SysError::new(
            CALL,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{text:?}")),
        )
    })?;
    Ok(*TYPE.get_or_init(|| t))
}

/// A perf event: a uprobe or a sampling clock. Dropping it closes the event
/// (a uprobe is removed, a clock stops) unless a `BPF_PERF_EVENT` link
/// still holds it.
#[derive(Debug)]
pub struct PerfEvent {
    fd: OwnedFd,
}

impl PerfEvent {
    /// The event's descriptor: the uprobe stays while it is open.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// `perf_event_open` of a uprobe at file `offset` of `path`:
    /// `config = (ref_ctr_offset << 32) | retprobe`, `config1` = the path,
    /// `config2` = the offset. `ref_ctr_offset` is the file offset of a USDT
    /// semaphore (0 for none) and must fit in 32 bits (`InvalidInput`
    /// otherwise). `pid` `None` probes every process (pid -1, cpu 0: still
    /// fires on every CPU); `Some(p)` only process `p` (pid p, cpu -1).
    /// The event is enabled at creation.
    pub fn uprobe(
        path: &Path,
        offset: u64,
        ref_ctr_offset: u64,
        pid: Option<u32>,
        retprobe: bool,
    ) -> Result<PerfEvent, SysError> {
        const CALL: &str = "perf_event_open(uprobe)";
        if ref_ctr_offset > u64::from(u32::MAX) {
            return Err(SysError::invalid_input(
                CALL,
                format!("ref_ctr_offset {ref_ctr_offset:#x} does not fit in 32 bits"),
            ));
        }
        let (pid, cpu) = match pid {
            None => (-1, 0),
            Some(p) => match i32::try_from(p) {
                Ok(p) if p > 0 => (p, -1),
                _ => return Err(SysError::invalid_input(CALL, format!("bad pid {p}"))),
            },
        };
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| SysError::invalid_input(CALL, "path contains NUL"))?;
        let attr = PerfEventAttr {
            type_: uprobe_pmu_type()?,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: (ref_ctr_offset << 32) | u64::from(retprobe),
            config1: sys::cstr_addr(&path),
            config2: offset,
            ..PerfEventAttr::default()
        };
        // SAFETY: the only pointer in `attr` is config1, the NUL-terminated
        // `path`, alive until the end of this function; the kernel copies it.
        let fd =
            unsafe { sys::perf_event_open(&attr, pid, cpu) }.map_err(|e| SysError::new(CALL, e))?;
        Ok(PerfEvent { fd })
    }

    /// The event fd.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// `PERF_EVENT_IOC_SET_BPF`: runs `prog` on every hit. The event holds a
    /// reference to the program; it stays attached while the event lives.
    /// `prog` must have been loaded without an expected attach type. The
    /// kernel (6.18) accepts and runs a uprobe_multi program here, but its
    /// `bpf_get_attach_cookie` then reads a run context of the wrong kind
    /// (garbage cookies were observed), so that case is refused with
    /// `InvalidInput`.
    pub fn set_bpf(&self, prog: &Program) -> Result<(), SysError> {
        const CALL: &str = "ioctl(PERF_EVENT_IOC_SET_BPF)";
        if prog.expected_attach_type() == crate::bpf::BPF_TRACE_UPROBE_MULTI {
            return Err(SysError::invalid_input(
                CALL,
                "program was loaded for uprobe_multi links",
            ));
        }
        sys::perf_ioctl(self.fd.as_fd(), PerfIoctl::SetBpf, prog.raw_fd())
            .map_err(|e| SysError::new(CALL, e))
    }

    /// `PERF_EVENT_IOC_ENABLE`.
    pub fn enable(&self) -> Result<(), SysError> {
        sys::perf_ioctl(self.fd.as_fd(), PerfIoctl::Enable, 0)
            .map_err(|e| SysError::new("ioctl(PERF_EVENT_IOC_ENABLE)", e))
    }

    /// `PERF_EVENT_IOC_DISABLE`: the event stops firing (a sampler stops
    /// sampling) until [`enable`](PerfEvent::enable)d again.
    pub fn disable(&self) -> Result<(), SysError> {
        sys::perf_ioctl(self.fd.as_fd(), PerfIoctl::Disable, 0)
            .map_err(|e| SysError::new("ioctl(PERF_EVENT_IOC_DISABLE)", e))
    }
}

impl AsFd for PerfEvent {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
