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
//! The table is read by `cpython::debug_offsets` (pure, tested there);
//! [`send`] reads and writes the process through `/proc/PID/mem`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cpython::debug_offsets::{DebugOffsets, DebugOffsetsError, Field, TABLE_BYTES};
use crate::process::module::Module;
use crate::process::proc::Process;

/// `_PY_EVAL_PLEASE_STOP_BIT` (`1 << 5` in 3.14's `pycore_ceval.h`).
const PLEASE_STOP: u64 = 1 << 5;

/// What pytap needs of `_Py_DebugOffsets` to send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offsets {
    interpreters_head: u64,
    threads_main: u64,
    threads_head: u64,
    eval_breaker: u64,
    remote_debugger_support: u64,
    remote_debugging_enabled: u64,
    debugger_pending_call: u64,
    debugger_script_path: u64,
    debugger_script_path_size: u64,
    thread_state_size: u64,
}

/// Why a table cannot carry a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The table is missing, of another version, or nonsense.
    #[error(transparent)]
    Table(#[from] DebugOffsetsError),
    /// Not 3.14, the one version whose protocol the agent is tested on.
    #[error("pytap's agent attaches through PEP 768 on CPython 3.14 only, not 3.{0}")]
    Version(u8),
    /// A table whose debugger support section does not fit the thread state.
    #[error("the remote debugging table does not make sense (debugger support)")]
    Nonsense,
    /// A free-threaded build.
    #[error("a free-threaded CPython, which pytap's agent does not support")]
    FreeThreaded,
}

impl Offsets {
    /// Reads the table at the start of `_PyRuntime` (`bytes`, at least
    /// [`TABLE_BYTES`] of it).
    fn parse(bytes: &[u8]) -> Result<Offsets, RequestError> {
        let table = DebugOffsets::parse(bytes)?;
        if table.minor() != 14 {
            return Err(RequestError::Version(table.minor()));
        }
        if table.free_threaded {
            return Err(RequestError::FreeThreaded);
        }
        let get = |field| table.get(field).ok_or(RequestError::Nonsense);
        let offsets = Offsets {
            interpreters_head: get(Field::InterpretersHead)?,
            threads_main: get(Field::ThreadsMain)?,
            threads_head: get(Field::ThreadsHead)?,
            eval_breaker: get(Field::EvalBreaker)?,
            remote_debugger_support: get(Field::RemoteDebuggerSupport)?,
            remote_debugging_enabled: get(Field::RemoteDebuggingEnabled)?,
            debugger_pending_call: get(Field::DebuggerPendingCall)?,
            debugger_script_path: get(Field::DebuggerScriptPath)?,
            debugger_script_path_size: get(Field::DebuggerScriptPathSize)?,
            thread_state_size: table.thread_state_size(),
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
            return Err(RequestError::Nonsense);
        }
        Ok(offsets)
    }
}

/// Where `module`'s `_PyRuntime` is in process `pid`.
fn runtime_address(process: &Process, module: &Module) -> Result<u64> {
    let vaddr = module
        .section_address(".PyRuntime")
        .context("no .PyRuntime section")?;
    module
        .address_in(process, vaddr)
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
    let offsets = Offsets::parse(&table).with_context(|| format!("pid {pid}"))?;
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

    fn table_3_14() -> Vec<u8> {
        crate::cpython::debug_offsets::tests::table_3_14()
    }

    #[test]
    fn the_3_14_table_carries_a_request() {
        let d = Offsets::parse(&table_3_14()).unwrap();
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
        t[8..16].copy_from_slice(&0x030c05f0u64.to_le_bytes());
        assert!(Offsets::parse(&t).unwrap_err().to_string().contains("3.12"));
        let mut t = table_3_14();
        // A script path buffer past the end of the thread state.
        t[8 * 90..8 * 91].copy_from_slice(&800u64.to_le_bytes());
        assert!(
            Offsets::parse(&t)
                .unwrap_err()
                .to_string()
                .contains("does not make sense")
        );
    }
}
