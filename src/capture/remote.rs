//! Attaching the agent to a running CPython 3.14 through PEP 768's remote
//! debugging protocol, as `sys.remote_exec` does: find `_PyRuntime` (the
//! `.PyRuntime` section, relocated to where the process maps it), read
//! the `_Py_DebugOffsets` table at its start (never hard-coded offsets:
//! they move between patch releases; the table's own layout differs per
//! minor version, so its version field picks the layout), then in the
//! main thread's state write the agent's path and the pending-call flag,
//! and set the eval breaker's "please stop" bit. The interpreter runs the
//! file at its next eval-breaker check (a thread blocked in C code: when
//! it returns to Python).
//!
//! [`DebugOffsets::parse`] is pure (tested on the 3.14 fixture's table);
//! [`send`] reads and writes the process through `/proc/PID/mem`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::process::module::Module;
use crate::process::proc::Process;

/// `_Py_Debug_Cookie`.
const COOKIE: &[u8; 8] = b"xdebugpy";

/// `_PY_EVAL_PLEASE_STOP_BIT` (`1 << 5` in 3.14's `pycore_ceval.h`).
const PLEASE_STOP: u64 = 1 << 5;

/// Bytes of the table pytap reads (3.14's is 95 words).
const TABLE_BYTES: usize = 8 * 96;

/// What pytap needs of `_Py_DebugOffsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugOffsets {
    /// `PY_VERSION_HEX`.
    pub version: u64,
    /// A free-threaded build.
    pub free_threaded: bool,
    /// `_PyRuntimeState.interpreters.head`.
    pub interpreters_head: u64,
    /// `PyInterpreterState.threads.main`.
    pub threads_main: u64,
    /// `PyInterpreterState.threads.head`.
    pub threads_head: u64,
    /// `PyThreadState.eval_breaker`.
    pub eval_breaker: u64,
    /// `PyThreadState.remote_debugger_support`.
    pub remote_debugger_support: u64,
    /// `PyInterpreterState.config.remote_debug`.
    pub remote_debugging_enabled: u64,
    /// In `_PyRemoteDebuggerSupport`: the pending-call flag.
    pub debugger_pending_call: u64,
    /// In `_PyRemoteDebuggerSupport`: the script path buffer.
    pub debugger_script_path: u64,
    /// That buffer's size.
    pub debugger_script_path_size: u64,
    /// `sizeof(PyThreadState)`.
    pub thread_state_size: u64,
}

/// Word indices of the fields, per minor version's table layout.
struct Layout {
    interpreters_head: usize,
    threads_head: usize,
    threads_main: usize,
    thread_state_size: usize,
    debugger_support: usize,
}

fn layout(minor: u64) -> Option<Layout> {
    match minor {
        // cookie, version, free_threaded; runtime_state (3 words);
        // interpreter_state (16); thread_state (9); interpreter_frame (8);
        // code_object (11); pyobject (2); type_object (4); tuple, list (3
        // each); set (4); dict (3); float (2); long, bytes (3 each);
        // unicode (4); gc (3); gen_object (5); then debugger_support.
        14 => Some(Layout {
            interpreters_head: 5,
            threads_head: 9,
            threads_main: 10,
            thread_state_size: 22,
            debugger_support: 89,
        }),
        _ => None,
    }
}

/// Why `_PyRuntime` holds no table pytap will write by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DebugOffsetsError {
    /// No cookie, or too few bytes.
    #[error("no _Py_DebugOffsets table at _PyRuntime")]
    Missing,
    /// A version whose table pytap does not know.
    #[error("CPython {major}.{minor}: pytap knows the remote debugging table of 3.14 only")]
    Version {
        /// Major version.
        major: u64,
        /// Minor version.
        minor: u64,
    },
    /// Offsets that do not describe a thread state.
    #[error("the remote debugging table does not make sense")]
    Nonsense,
}

impl DebugOffsets {
    /// Reads the table at the start of `_PyRuntime` (`bytes`, at least
    /// [`TABLE_BYTES`] of it).
    pub fn parse(bytes: &[u8]) -> Result<DebugOffsets, DebugOffsetsError> {
        if bytes.len() < TABLE_BYTES || &bytes[..8] != COOKIE {
            return Err(DebugOffsetsError::Missing);
        }
        let word =
            |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        let version = word(1);
        let (major, minor) = (version >> 24, (version >> 16) & 0xff);
        let Some(l) = layout(minor).filter(|_| major == 3) else {
            return Err(DebugOffsetsError::Version { major, minor });
        };
        let d = l.debugger_support;
        let offsets = DebugOffsets {
            version,
            free_threaded: word(2) != 0,
            interpreters_head: word(l.interpreters_head),
            threads_head: word(l.threads_head),
            threads_main: word(l.threads_main),
            thread_state_size: word(l.thread_state_size),
            eval_breaker: word(d),
            remote_debugger_support: word(d + 1),
            remote_debugging_enabled: word(d + 2),
            debugger_pending_call: word(d + 3),
            debugger_script_path: word(d + 4),
            debugger_script_path_size: word(d + 5),
        };
        // A table that does not describe a thread state is not one pytap
        // will write by.
        let support_end = offsets.remote_debugger_support
            + offsets.debugger_script_path
            + offsets.debugger_script_path_size;
        if !(64..=4096).contains(&offsets.debugger_script_path_size)
            || support_end > offsets.thread_state_size
            || offsets.eval_breaker + 8 > offsets.thread_state_size
        {
            return Err(DebugOffsetsError::Nonsense);
        }
        Ok(offsets)
    }
}

/// Where `module`'s `_PyRuntime` is in process `pid`.
fn runtime_address(process: &Process, module: &Module) -> Result<u64> {
    let vaddr = module
        .section_address(".PyRuntime")
        .context("no .PyRuntime section")?;
    let seg = module
        .loads
        .iter()
        .find(|s| vaddr >= s.vaddr && vaddr < s.vaddr + s.memsz)
        .context(".PyRuntime is in no loaded segment")?;
    let offset = seg.offset + (vaddr - seg.vaddr);
    let dev = process
        .maps
        .iter()
        .find(|m| m.inode == module.inode && m.path.is_some())
        .map(|m| m.dev.clone())
        .context("the interpreter is not mapped in the process")?;
    process
        .address_of_file_offset(&dev, module.inode, offset)
        .context("_PyRuntime is not mapped in the process")
}

/// A request [`send`] left in a process, until the interpreter takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCall {
    /// The process.
    pub pid: u32,
    /// Where its main thread's pending-call flag is.
    flag: u64,
}

/// Withdraws a request the interpreter has not taken yet (it clears the
/// flag when it takes one): `true` when it was still pending and will not
/// run, `false` when it was taken (the agent runs, or ran) or the process
/// is gone. A process that never took it (stopped, or blocked in C code
/// until pytap gave up) must not run the agent later, when its file is
/// gone: it would print "Can't open debugger script" to the program's
/// stderr.
pub fn withdraw(call: PendingCall) -> bool {
    let Ok(mem) = OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{}/mem", call.pid))
    else {
        return false;
    };
    let mut flag = [0u8; 4];
    if mem.read_exact_at(&mut flag, call.flag).is_err() || i32::from_le_bytes(flag) == 0 {
        return false;
    }
    mem.write_all_at(&0i32.to_le_bytes(), call.flag).is_ok()
}

/// Asks process `pid` (running `module`, CPython 3.14) to run the file
/// `script` (a path as the process sees it) at its next eval-breaker check.
pub fn send(pid: u32, module: &Module, script: &Path) -> Result<PendingCall> {
    let process = Process::open(pid)?;
    let runtime = runtime_address(&process, module)?;
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .with_context(|| format!("opening the memory of pid {pid}"))?;
    let read = |address: u64, buf: &mut [u8]| -> Result<()> {
        mem.read_exact_at(buf, address)
            .with_context(|| format!("reading pid {pid} at {address:#x}"))
    };
    let read_u64 = |address: u64| -> Result<u64> {
        let mut b = [0u8; 8];
        read(address, &mut b)?;
        Ok(u64::from_le_bytes(b))
    };
    let mut table = vec![0u8; TABLE_BYTES];
    read(runtime, &mut table)?;
    let offsets = DebugOffsets::parse(&table)?;
    if offsets.free_threaded {
        bail!("pid {pid} runs a free-threaded CPython, which pytap's agent does not support");
    }
    let interp = read_u64(runtime + offsets.interpreters_head)?;
    if interp == 0 {
        bail!("pid {pid} has no interpreter yet (or any more)");
    }
    let mut enabled = [0u8; 4];
    read(interp + offsets.remote_debugging_enabled, &mut enabled)?;
    if i32::from_le_bytes(enabled) == 0 {
        bail!(
            "pid {pid} does not allow remote debugging (PYTHON_DISABLE_REMOTE_DEBUG, \
             -X disable_remote_debug, or a build without it): pytap cannot load its agent there; \
             launch the program under pytap instead (`pytap flow -- python3.14 app.py`)"
        );
    }
    let mut tstate = read_u64(interp + offsets.threads_main)?;
    if tstate == 0 {
        tstate = read_u64(interp + offsets.threads_head)?;
    }
    if tstate == 0 {
        bail!("pid {pid} has no Python thread");
    }
    let path = script.as_os_str().as_encoded_bytes();
    if path.len() as u64 >= offsets.debugger_script_path_size {
        bail!(
            "the agent's path {} is longer than the interpreter's {} bytes",
            script.display(),
            offsets.debugger_script_path_size
        );
    }
    let support = tstate + offsets.remote_debugger_support;
    let mut buf = path.to_vec();
    buf.push(0);
    let write = |address: u64, bytes: &[u8]| -> Result<()> {
        mem.write_all_at(bytes, address)
            .with_context(|| format!("writing pid {pid} at {address:#x}"))
    };
    write(support + offsets.debugger_script_path, &buf)?;
    write(support + offsets.debugger_pending_call, &1i32.to_le_bytes())?;
    // The interpreter changes other bits of the breaker too: set ours
    // with as short a window as a read and a write allow (as CPython's
    // own sys.remote_exec does).
    let breaker = tstate + offsets.eval_breaker;
    let value = read_u64(breaker)?;
    write(breaker, &(value | PLEASE_STOP).to_le_bytes())?;
    Ok(PendingCall {
        pid,
        flag: support + offsets.debugger_pending_call,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3.14.8's table as Debian builds it (from the fixture's .PyRuntime),
    /// the words pytap reads and the ones around them.
    fn table_3_14() -> Vec<u8> {
        let mut words = [0u64; 96];
        words[0] = u64::from_le_bytes(*COOKIE);
        words[1] = 0x030e08f0;
        words[5] = 808;
        words[9] = 7344;
        words[10] = 7360;
        words[22] = 832;
        words[89..95].copy_from_slice(&[24, 304, 8076, 0, 4, 512]);
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn the_3_14_table_is_read_by_its_layout() {
        let d = DebugOffsets::parse(&table_3_14()).unwrap();
        assert_eq!(d.interpreters_head, 808);
        assert_eq!((d.threads_head, d.threads_main), (7344, 7360));
        assert_eq!((d.eval_breaker, d.remote_debugger_support), (24, 304));
        assert_eq!(d.remote_debugging_enabled, 8076);
        assert_eq!(
            (
                d.debugger_pending_call,
                d.debugger_script_path,
                d.debugger_script_path_size
            ),
            (0, 4, 512)
        );
    }

    #[test]
    fn other_versions_and_nonsense_are_refused() {
        let mut t = table_3_14();
        t[8..16].copy_from_slice(&0x030d05f0u64.to_le_bytes());
        assert!(
            DebugOffsets::parse(&t)
                .unwrap_err()
                .to_string()
                .contains("3.13")
        );
        let mut t = table_3_14();
        t[0] = b'y';
        assert!(DebugOffsets::parse(&t).is_err());
        let mut t = table_3_14();
        // A script path buffer past the end of the thread state.
        t[8 * 90..8 * 91].copy_from_slice(&900u64.to_le_bytes());
        assert!(
            DebugOffsets::parse(&t)
                .unwrap_err()
                .to_string()
                .contains("does not make sense")
        );
        assert!(DebugOffsets::parse(&table_3_14()[..100]).is_err());
    }
}
