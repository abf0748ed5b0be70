//! [`Program`] loading with the verifier-log retry, [`Link`] creation
//! (uprobe_multi and perf-event links), and the uprobe_multi feature probe.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use super::attr::{self, LinkCreatePerf, LinkCreateUprobeMulti, ProgLoad, RawTracepointOpen};
use super::{BPF_PERF_EVENT, BPF_TRACE_UPROBE_MULTI, ProgType};
use crate::sys;
use crate::{LoadError, SysError};

/// Size of the verifier log buffer for the second load attempt. Since 6.4 the
/// kernel keeps the *tail* of a log that does not fit (rotating log), which is
/// where the error is.
const LOG_SIZE: usize = 16 << 20;

/// How often a load is retried when the verifier answers `EAGAIN` (it does
/// when a signal interrupts a long verification), as libbpf does.
const EAGAIN_RETRIES: usize = 5;

/// A loaded BPF program. Links and perf events hold their own reference, so
/// the `Program` may be dropped once it is attached.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
    expected_attach_type: u32,
}

impl Program {
    /// `BPF_PROG_LOAD`. `insns`: encoded instructions (length a non-zero
    /// multiple of 8, map fds already relocated). `name`: the kernel name
    /// (16 bytes, NUL padded; byte 15 is forced to NUL).
    /// `expected_attach_type`: `Some(BPF_TRACE_UPROBE_MULTI)` for programs
    /// meant for [`Link::uprobe_multi`], `None` for perf-event attachment
    /// (the kernel refuses to attach a uprobe_multi program to a perf event
    /// and vice versa).
    ///
    /// The first attempt runs without a log; if it fails, the load is made
    /// again with `log_level = 1` and a 16 MiB buffer, and the error carries
    /// the first attempt's errno and the second attempt's log.
    pub fn load(
        prog_type: ProgType,
        expected_attach_type: Option<u32>,
        insns: &[u8],
        license: &str,
        name: [u8; 16],
    ) -> Result<Program, LoadError> {
        let refused = |why: &str| LoadError {
            source: sys::invalid(why),
            log: String::new(),
        };
        if insns.is_empty() || !insns.len().is_multiple_of(8) {
            return Err(refused(
                "instruction bytes must be a non-zero multiple of 8",
            ));
        }
        let insn_cnt = u32::try_from(insns.len() / 8).map_err(|_| refused("too many insns"))?;
        let license = CString::new(license).map_err(|_| refused("license contains NUL"))?;
        let mut prog_name = name;
        prog_name[15] = 0;
        let mut a = ProgLoad {
            prog_type: prog_type as u32,
            insn_cnt,
            insns: insns.as_ptr() as u64,
            license: sys::cstr_addr(&license),
            prog_name,
            expected_attach_type: expected_attach_type.unwrap_or(0),
            ..ProgLoad::default()
        };
        let expected_attach_type = a.expected_attach_type;
        // SAFETY: the kernel reads insn_cnt * 8 bytes at `insns` (exactly the
        // slice) and the NUL-terminated license, both alive for the call; no
        // log buffer is given yet.
        let first = match unsafe { load_retrying(&mut a) } {
            Ok(fd) => {
                return Ok(Program {
                    fd,
                    expected_attach_type,
                });
            }
            Err(e) => e,
        };
        let mut log = vec![0u8; LOG_SIZE];
        a.log_level = 1;
        a.log_size = LOG_SIZE as u32;
        a.log_buf = log.as_mut_ptr() as u64;
        // SAFETY: as above, plus the kernel writes at most log_size bytes
        // into `log`, which is that long and not otherwise borrowed.
        match unsafe { load_retrying(&mut a) } {
            Ok(fd) => Ok(Program {
                fd,
                expected_attach_type,
            }),
            Err(_) => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                Err(LoadError {
                    source: first,
                    log: String::from_utf8_lossy(&log[..end]).into_owned(),
                })
            }
        }
    }

    /// The program fd.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The `expected_attach_type` it was loaded with (0 for none).
    pub fn expected_attach_type(&self) -> u32 {
        self.expected_attach_type
    }
}

/// `BPF_PROG_LOAD`, retried on `EAGAIN`.
///
/// # Safety
///
/// As for [`sys::bpf`]: `insns`, `license` and (if set) `log_buf` must point
/// to live buffers of `insn_cnt * 8`, NUL-terminated and `log_size` bytes.
unsafe fn load_retrying(a: &mut ProgLoad) -> io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        // SAFETY: forwarded contract; PROG_LOAD returns a new program fd.
        match unsafe { sys::bpf_fd(attr::PROG_LOAD, a) } {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < EAGAIN_RETRIES => {
                tries += 1;
            }
            r => return r,
        }
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A BPF link: the program stays attached while the `Link` (its fd) lives.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
}

/// The sites of one file a uprobe_multi link probes, as the kernel takes
/// them: parallel arrays, one entry per site.
#[derive(Debug, Clone, Copy, Default)]
pub struct UprobeSites<'a> {
    /// File offsets of the probed instructions.
    pub offsets: &'a [u64],
    /// USDT semaphore offsets (`ref_ctr_offset`, 0 for none): as long as
    /// `offsets`, or empty for none at all.
    pub ref_ctr_offsets: &'a [u64],
    /// Attach cookies (read by `bpf_get_attach_cookie`): as long as
    /// `offsets`, or empty for none.
    pub cookies: &'a [u64],
}

impl<'a> UprobeSites<'a> {
    /// The sites at `offsets`, with their semaphores and cookies.
    pub fn new(
        offsets: &'a [u64],
        ref_ctr_offsets: &'a [u64],
        cookies: &'a [u64],
    ) -> UprobeSites<'a> {
        UprobeSites {
            offsets,
            ref_ctr_offsets,
            cookies,
        }
    }
}

/// `BPF_LINK_CREATE(BPF_TRACE_UPROBE_MULTI)` with already validated
/// arguments; the array lengths are checked here, next to the call that
/// relies on them.
fn uprobe_multi_raw(
    prog: BorrowedFd<'_>,
    path: &CStr,
    sites: UprobeSites<'_>,
    pid: u32,
    retprobe: bool,
) -> io::Result<OwnedFd> {
    let UprobeSites {
        offsets,
        ref_ctr_offsets: refs,
        cookies,
    } = sites;
    let cnt = u32::try_from(offsets.len()).map_err(|_| sys::invalid("too many offsets"))?;
    if (!refs.is_empty() && refs.len() != offsets.len())
        || (!cookies.is_empty() && cookies.len() != offsets.len())
    {
        return Err(sys::invalid("offset, ref_ctr and cookie counts differ"));
    }
    let opt = |s: &[u64]| if s.is_empty() { 0 } else { s.as_ptr() as u64 };
    let mut a = LinkCreateUprobeMulti {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_TRACE_UPROBE_MULTI,
        path: sys::cstr_addr(path),
        offsets: opt(offsets),
        ref_ctr_offsets: opt(refs),
        cookies: opt(cookies),
        cnt,
        multi_flags: u32::from(retprobe), // BPF_F_UPROBE_MULTI_RETURN
        pid,
        ..LinkCreateUprobeMulti::default()
    };
    // SAFETY: the kernel copies the NUL-terminated `path` and reads `cnt`
    // u64s from `offsets` and, when non-NULL, from `ref_ctr_offsets` and
    // `cookies`; each non-NULL array has exactly `cnt` elements (checked
    // above). LINK_CREATE returns a new link fd.
    unsafe { sys::bpf_fd(attr::LINK_CREATE, &mut a) }
}

impl Link {
    /// `BPF_LINK_CREATE` with attach type `BPF_TRACE_UPROBE_MULTI`: every
    /// site of one file in one link. `sites.offsets` are file offsets;
    /// `sites.ref_ctr_offsets` (USDT semaphores, 0 for none) and
    /// `sites.cookies` must be as long as them (or empty for "none"). `pid` `None` probes every
    /// process mapping the file; `Some(p)` installs the breakpoints only in
    /// process `p` (a tgid; `Some(0)` is refused). `retprobe`: fire on return.
    /// `prog` must have been loaded with `expected_attach_type =
    /// BPF_TRACE_UPROBE_MULTI`.
    pub fn uprobe_multi(
        prog: &Program,
        path: &Path,
        sites: UprobeSites<'_>,
        pid: Option<u32>,
        retprobe: bool,
    ) -> Result<Link, SysError> {
        const CALL: &str = "BPF_LINK_CREATE(uprobe_multi)";
        if sites.offsets.is_empty() {
            return Err(SysError::invalid_input(CALL, "no offsets"));
        }
        let pid = match pid {
            None => 0,
            Some(p) if p == 0 || p > i32::MAX as u32 => {
                return Err(SysError::invalid_input(CALL, format!("bad pid {p}")));
            }
            Some(p) => p,
        };
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| SysError::invalid_input(CALL, "path contains NUL"))?;
        uprobe_multi_raw(prog.as_fd(), &path, sites, pid, retprobe)
            .map(|fd| Link { fd })
            .map_err(|e| SysError::new(CALL, e))
    }

    /// `BPF_LINK_CREATE` with attach type `BPF_PERF_EVENT` and a
    /// `bpf_cookie` (read by `bpf_get_attach_cookie`). The link holds its own
    /// reference to the event, so `event` may be dropped afterwards.
    pub fn perf_event(
        prog: &Program,
        event: &crate::perf::PerfEvent,
        cookie: u64,
    ) -> Result<Link, SysError> {
        let mut a = LinkCreatePerf {
            prog_fd: prog.raw_fd() as u32,
            target_fd: event.raw_fd() as u32,
            attach_type: BPF_PERF_EVENT,
            bpf_cookie: cookie,
            ..LinkCreatePerf::default()
        };
        // SAFETY: this attr holds no pointers; LINK_CREATE returns a new fd.
        unsafe { sys::bpf_fd(attr::LINK_CREATE, &mut a) }
            .map(|fd| Link { fd })
            .map_err(|e| SysError::new("BPF_LINK_CREATE(perf_event)", e))
    }

    /// `BPF_RAW_TRACEPOINT_OPEN`: `prog` (loaded as
    /// [`ProgType::RawTracepoint`]) runs at every hit of the kernel
    /// tracepoint `name` (`task_rename`, `sched_process_exec`), on every CPU,
    /// until the link is dropped. Needs no tracefs.
    pub fn raw_tracepoint(prog: &Program, name: &str) -> Result<Link, SysError> {
        const CALL: &str = "BPF_RAW_TRACEPOINT_OPEN";
        let name =
            CString::new(name).map_err(|_| SysError::invalid_input(CALL, "name contains NUL"))?;
        let mut a = RawTracepointOpen {
            name: sys::cstr_addr(&name),
            prog_fd: prog.raw_fd() as u32,
            ..RawTracepointOpen::default()
        };
        // SAFETY: the kernel copies the NUL-terminated `name`, alive for the
        // call; RAW_TRACEPOINT_OPEN returns a new fd.
        unsafe { sys::bpf_fd(attr::RAW_TRACEPOINT_OPEN, &mut a) }
            .map(|fd| Link { fd })
            .map_err(|e| SysError::new(CALL, e))
    }

    /// The link fd.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The link's descriptor: the link stays while it is open.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether `BPF_LINK_CREATE(BPF_TRACE_UPROBE_MULTI)` is usable, including
/// process (not thread) pid filtering. Probed once, then cached.
///
/// The probe is libbpf's (`probe_uprobe_multi_link`): load `r0 = 0; exit` as
/// a kprobe program with `expected_attach_type = 48`, then
/// 1. link it to offset 0 of `"/"` with no pid. A kernel that knows the link
///    type resolves the path and fails with `EBADF` (not a regular file);
///    older kernels fail earlier with `EINVAL` (unknown attach type), and any
///    other answer also counts as unsupported;
/// 2. do it again with pid `-1`. Kernels whose pid filter works per process
///    (the 2024 fix, also in stable kernels) reject the negative pid with
///    `EINVAL` before looking at the path; the first version, which filtered
///    by thread, got as far as `EBADF` and is treated as unsupported.
///
/// Both answers were observed on Linux 6.18, where this returns `true`.
pub fn uprobe_multi_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(probe_uprobe_multi)
}

fn probe_uprobe_multi() -> bool {
    // r0 = 0; exit
    const INSNS: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"probe_umult");
    let Ok(prog) = Program::load(
        ProgType::Kprobe,
        Some(BPF_TRACE_UPROBE_MULTI),
        &INSNS,
        "GPL",
        name,
    ) else {
        return false;
    };
    let sites = UprobeSites {
        offsets: &[0],
        ..UprobeSites::default()
    };
    let errno_of = |pid: u32| -> Option<i32> {
        match uprobe_multi_raw(prog.as_fd(), c"/", sites, pid, false) {
            // Cannot happen for "/"; the link is dropped (detached) at once.
            Ok(_) => None,
            Err(e) => e.raw_os_error(),
        }
    };
    errno_of(0) == Some(libc::EBADF) && errno_of(u32::MAX) == Some(libc::EINVAL)
}
