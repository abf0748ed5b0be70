//! The CPython a running process runs, found from outside so that its
//! stacks can be read: with or without markers, an executable or a shared
//! libpython, stripped or not.
//!
//! The file that defines `_PyRuntime` among the process's mappings (in
//! `.dynsym` on every build: the executable, or the libpython a shared
//! build or an embedding program maps), opened through `/proc/PID/root`
//! so containers work; its version from the file (`Py_Version`, version
//! strings, the file name); the layout from the generated table (3.8–3.12)
//! or the process's own `_Py_DebugOffsets` (3.13+), checked; the addresses
//! of `PyCode_Type`, `PyUnicode_Type` and `PyBytes_Type`, against which
//! every object read is checked. Builds whose objects the layout cannot
//! vouch for are refused with their reason, never guessed.

use crate::cpython::PyVersion;
use crate::cpython::debug_offsets::{DebugOffsets, TABLE_BYTES};
use crate::cpython::layout::{LayoutError, MINORS, StackLayout};
use std::collections::HashSet;

use crate::cpython::stack::walk::{GLIBC_PTHREAD_TID, RawThread};
use crate::cpython::stack::{Memory, Runtime, Unreadable, read_u32};
use crate::error::TargetError;
use crate::process::module::Module;
use crate::process::proc::{Process, Task};

/// A process's memory, read with `process_vm_readv` (the process keeps
/// running).
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    /// The process.
    pub pid: u32,
}

impl Memory for ProcessMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        pytap_sys::process::read_memory(self.pid, address, buf).map_err(|_| Unreadable(address))
    }
}

/// The interpreter of a process.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// The process.
    pub process: Process,
    /// The file that defines `_PyRuntime`.
    pub module: Module,
    /// Its version.
    pub version: PyVersion,
    /// Where the runtime and the object types are, and the layout.
    pub runtime: Runtime,
}

impl Interpreter {
    /// The process's memory.
    pub fn memory(&self) -> ProcessMemory {
        ProcessMemory {
            pid: self.process.pid,
        }
    }

    /// Each thread state's thread id in pytap's namespace (`tasks`: the
    /// process's threads now): from `native_thread_id` (3.11+), or from
    /// glibc's `struct pthread` (3.8–3.10), which is believed only when
    /// every thread's lands on a thread of the process.
    pub fn thread_tids(&self, raw: &[RawThread], tasks: &[Task]) -> Vec<Option<u32>> {
        let host_of = |ns: u32| tasks.iter().find(|t| t.ns_tid == ns).map(|t| t.tid);
        if self.runtime.layout.native_thread_id.is_some() {
            return raw
                .iter()
                .map(|t| t.native_thread_id.and_then(host_of))
                .collect();
        }
        let mem = self.memory();
        let ns: Vec<Option<u32>> = raw
            .iter()
            .map(|t| read_u32(&mem, t.thread_id.wrapping_add(GLIBC_PTHREAD_TID)).ok())
            .collect();
        let known: HashSet<u32> = tasks.iter().map(|t| t.ns_tid).collect();
        if ns.iter().all(|n| n.is_some_and(|n| known.contains(&n))) {
            ns.into_iter().map(|n| n.and_then(host_of)).collect()
        } else {
            vec![None; raw.len()]
        }
    }
}

/// The symbols a stack reader needs, in [`Module::dynamic_symbols`] order.
const SYMBOLS: [&str; 5] = [
    "_PyRuntime",
    "PyCode_Type",
    "PyUnicode_Type",
    "PyBytes_Type",
    // Defined only in `--with-trace-refs` builds, whose objects carry two
    // more pointers before their type.
    "_Py_PrintReferences",
];

/// The version of `module` (which defines `_PyRuntime`; `symbols` as
/// [`SYMBOLS`] says), or why pytap will not read its stacks.
fn check_build(module: &Module, symbols: &[Option<u64>]) -> Result<PyVersion, String> {
    let shown = module.path.display().to_string();
    let version = module
        .py_version()
        .ok_or_else(|| format!("pytap cannot tell which CPython version {shown} is"))?;
    if version.major != 3 || !MINORS.contains(&version.minor) {
        return Err(LayoutError::Unsupported(format!(
            "{}.{} ({shown})",
            version.major, version.minor
        ))
        .to_string());
    }
    if symbols[4].is_some() {
        return Err(format!(
            "{shown} is built --with-trace-refs: its objects are laid out differently, \
             and pytap does not read them"
        ));
    }
    if module
        .file_name()
        .contains(&format!("3.{}t", version.minor))
    {
        return Err(LayoutError::FreeThreaded(version.minor).to_string());
    }
    Ok(version)
}

/// Whether pytap can read the stacks of processes running the file at
/// `path` (an interpreter, or the libpython it links), judged from the
/// files alone: `Ok` with the file that defines `_PyRuntime`, or why not.
/// For 3.13+ the remote debugging table is read from the file's
/// `.PyRuntime` section, as a process starts with it.
pub fn stacks_readable(path: &std::path::Path) -> Result<String, String> {
    path_layout(path).map(|(file, _)| file)
}

/// The stack layout of the CPython at `path` (an interpreter, or the
/// libpython it links), from the files alone ([`file_layout`] of the file
/// that defines `_PyRuntime`), and that file: what a program that walks
/// the stacks of processes running it (a script's `jstack()`) is made
/// with before any runs.
pub fn path_layout(path: &std::path::Path) -> Result<(String, StackLayout), String> {
    let module = Module::open(path, path).map_err(|e| e.to_string())?;
    let module = if module.dynamic_symbols(&SYMBOLS[..1])[0].is_some() {
        module
    } else {
        let origin = path
            .parent()
            .unwrap_or(std::path::Path::new("/"))
            .to_path_buf();
        let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
        let steps = super::libsearch::search_order(&module.dynamic, &origin, ld_path.as_deref());
        module
            .dynamic
            .needed
            .iter()
            .filter(|n| n.contains("libpython"))
            .find_map(|n| super::libsearch::find(n, &steps, std::path::Path::new("/")))
            .and_then(|lib| Module::open(&lib, &lib).ok())
            .filter(|lib| lib.dynamic_symbols(&SYMBOLS[..1])[0].is_some())
            .ok_or_else(|| "no _PyRuntime: not a CPython pytap knows".to_string())?
    };
    let layout = file_layout(&module)?;
    Ok((module.path.display().to_string(), layout))
}

/// The stack layout of processes running `module`, the file that defines
/// `_PyRuntime`, judged from the file alone (for 3.13+ its `.PyRuntime`
/// section, the table a process starts with), or why pytap will not read
/// its stacks. A walker built into a marker's program before any process
/// runs uses it; each process's own table is checked against it when the
/// process is found ([`find`]).
pub fn file_layout(module: &Module) -> Result<StackLayout, String> {
    let symbols = module.dynamic_symbols(&SYMBOLS);
    if symbols[0].is_none() {
        return Err(format!(
            "{} does not define _PyRuntime",
            module.path.display()
        ));
    }
    let version = check_build(module, &symbols)?;
    if version.minor <= 12 {
        return StackLayout::from_table(version.minor).map_err(|e| e.to_string());
    }
    let table = module
        .section_bytes(".PyRuntime", TABLE_BYTES)
        .ok_or_else(|| "no .PyRuntime section".to_string())?;
    let table = DebugOffsets::parse(&table).map_err(|e| e.to_string())?;
    StackLayout::from_debug_offsets(&table, version.minor).map_err(|e| e.to_string())
}

/// Finds the interpreter of process `pid`.
pub fn find(pid: u32) -> Result<Interpreter, TargetError> {
    let process = Process::open(pid)?;
    let refuse = |reason: String| TargetError::Stacks {
        label: process.label(),
        reason,
    };
    if process
        .maps
        .iter()
        .any(|m| m.path.as_deref().is_some_and(|p| p.contains("ld-musl")))
    {
        return Err(refuse(
            "it runs on musl libc, whose thread layout pytap has not been tested on".into(),
        ));
    }
    let mut found = None;
    for file in process.mapped_code_files() {
        let Ok(module) = Module::open(&file.path, &file.open_path) else {
            continue;
        };
        let symbols = module.dynamic_symbols(&SYMBOLS);
        if symbols[0].is_some() {
            found = Some((module, symbols));
            break;
        }
    }
    let Some((module, symbols)) = found else {
        return Err(refuse(
            "it is not running Python: no file it maps defines _PyRuntime".into(),
        ));
    };
    let shown = module.path.display().to_string();
    let version = check_build(&module, &symbols).map_err(refuse)?;
    let address = |i: usize, what: &str| {
        symbols[i]
            .and_then(|vaddr| module.address_in(&process, vaddr))
            .ok_or_else(|| refuse(format!("{what} of {shown} is not mapped in the process")))
    };
    let runtime_address = address(0, "_PyRuntime")?;
    let (code_type, str_type, bytes_type) = (
        address(1, "PyCode_Type")?,
        address(2, "PyUnicode_Type")?,
        address(3, "PyBytes_Type")?,
    );
    let memory = ProcessMemory { pid };
    let layout = if version.minor <= 12 {
        StackLayout::from_table(version.minor)
    } else {
        let mut table = vec![0u8; TABLE_BYTES];
        memory
            .read(runtime_address, &mut table)
            .map_err(|e| refuse(e.to_string()))?;
        DebugOffsets::parse(&table)
            .map_err(LayoutError::from)
            .and_then(|t| StackLayout::from_debug_offsets(&t, version.minor))
    }
    .map_err(|e| refuse(format!("{e} ({shown})")))?;
    Ok(Interpreter {
        runtime: Runtime {
            address: runtime_address,
            layout,
            code_type,
            str_type,
            bytes_type,
        },
        process,
        module,
        version,
    })
}
