//! Finding the files that carry CPython's markers, for every kind of target.
//!
//! - A path ([`resolve_path`]): the file itself when it has markers, else the
//!   `libpython*.so` it links (a shared build such as Fedora's python3).
//! - A running process ([`discover_process`]): every mapped ELF with python
//!   markers, the executable or a libpython, embedded interpreters included,
//!   each opened through `/proc/PID/root` so containers work.

pub mod functions;
pub mod libsearch;
pub mod module;
pub mod native;
pub mod proc;
pub mod python;

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::error::TargetError;
use crate::process::module::Module;
use proc::Process;

/// What a traced program's CPython must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wanted {
    /// Its markers: the module is the file that carries them.
    #[default]
    Markers,
    /// Nothing more than being a CPython (a script probing only functions
    /// and CPUs' clocks): the file with the markers if there is one, else
    /// the one that defines the interpreter (`_PyRuntime`).
    Interpreter,
}

/// The module with python markers a command will run, found without
/// running it: `argv[0]` looked up in `PATH`, `#!` interpreters followed
/// (`#!/usr/bin/env python3` included), then [`resolve_path`].
pub fn resolve_command(argv: &[std::ffi::OsString]) -> Result<Module, TargetError> {
    resolve_command_for(argv, Wanted::Markers)
}

/// [`resolve_command`] for what is `wanted`.
pub fn resolve_command_for(
    argv: &[std::ffi::OsString],
    wanted: Wanted,
) -> Result<Module, TargetError> {
    let program = argv.first().map(PathBuf::from).unwrap_or_default();
    let mut path = which(&program).ok_or_else(|| TargetError::CommandNotFound {
        program: program.display().to_string(),
    })?;
    for _ in 0..4 {
        match shebang(&path) {
            Some(interpreter) => {
                path = which(&interpreter).ok_or_else(|| TargetError::CommandNotFound {
                    program: interpreter.display().to_string(),
                })?;
            }
            None => break,
        }
    }
    let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
    resolve_path_for(&path, Path::new("/"), ld_path.as_deref(), wanted)
}

/// The program a `#!` line runs (the program after `env`).
fn shebang(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    parse_shebang(&head[..n])
}

/// Parses a `#!` line: `#!/usr/bin/python3 -u` gives `/usr/bin/python3`,
/// `#!/usr/bin/env -S python3 -u` gives `python3`.
pub fn parse_shebang(head: &[u8]) -> Option<PathBuf> {
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_whitespace();
    let interpreter = words.next()?;
    if Path::new(interpreter).file_name() == Some("env".as_ref()) {
        return words
            .find(|w| !w.starts_with('-') && !w.contains('='))
            .map(PathBuf::from);
    }
    Some(PathBuf::from(interpreter))
}

/// `program` looked up in `PATH` like `execvp` does (a name with a slash is a path).
pub fn which(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_os_str().to_string_lossy().contains('/') {
        return executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// How many files a `DT_NEEDED` walk opens at most: a bound for hostile inputs.
const MAX_DEPENDENCY_FILES: usize = 64;

/// The module with python markers that `path` runs: `path` itself, or the
/// libpython it links (directly or through another library).
///
/// `root` is the filesystem root libraries are looked up under (`/` or
/// `/proc/PID/root`), and `ld_library_path` the search path the program
/// would run with.
pub fn resolve_path(
    path: &Path,
    root: &Path,
    ld_library_path: Option<&str>,
) -> Result<Module, TargetError> {
    resolve_path_for(path, root, ld_library_path, Wanted::Markers)
}

/// [`resolve_path`] for what is `wanted`.
pub fn resolve_path_for(
    path: &Path,
    root: &Path,
    ld_library_path: Option<&str>,
    wanted: Wanted,
) -> Result<Module, TargetError> {
    let open_path = if root == Path::new("/") {
        path.to_path_buf()
    } else {
        root.join(path.strip_prefix("/").unwrap_or(path))
    };
    let first = Module::open(path, open_path)?;
    if first.has_python_markers() {
        return Ok(first);
    }
    match markers_in_dependencies(&first, root, ld_library_path) {
        Ok(Some(found)) => return Ok(found),
        Err(TargetError::NoMarkers { .. }) if wanted == Wanted::Interpreter => {
            // A shared build's libpython without markers: the file that
            // defines the interpreter.
            if let Some(lib) = libpython_of(&first, root, ld_library_path) {
                return Ok(lib);
            }
        }
        Err(e) => return Err(e),
        Ok(None) => {}
    }
    if wanted == Wanted::Interpreter && is_cpython(&first) {
        return Ok(first);
    }
    Err(no_markers_error(&first))
}

/// Whether `module` defines a CPython (it exports the C API): a
/// static build's executable, or a libpython.
fn is_cpython(module: &Module) -> bool {
    module.exports_python_api
}

/// The `libpython*` `module` links directly, opened.
fn libpython_of(module: &Module, root: &Path, ld_library_path: Option<&str>) -> Option<Module> {
    let origin = module.path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let steps = libsearch::search_order(&module.dynamic, &origin, ld_library_path);
    let name = module
        .dynamic
        .needed
        .iter()
        .find(|n| n.contains("libpython"))?;
    let path = libsearch::find(name, &steps, root)?;
    let open_path = root.join(path.strip_prefix("/").unwrap_or(&path));
    Module::open(&path, open_path).ok()
}

/// The error for a module without markers: a Python built without them,
/// or not a Python at all.
pub fn no_markers_error(module: &Module) -> TargetError {
    if module.exports_python_api || module.version.is_some() {
        TargetError::NoMarkers {
            what: format!("{} is", module.path.display()),
            version: module.version_suffix(),
        }
    } else {
        TargetError::NotAnInterpreter {
            path: module.path.clone(),
        }
    }
}

/// Walks `DT_NEEDED` breadth-first from `module` (libpython first at each
/// level) and returns the first library with python markers.
fn markers_in_dependencies(
    module: &Module,
    root: &Path,
    ld_library_path: Option<&str>,
) -> Result<Option<Module>, TargetError> {
    let mut queue: VecDeque<(Module, usize)> = VecDeque::from([(module.clone(), 0)]);
    let mut seen: HashSet<(u64, u64)> = HashSet::from([(module.dev, module.inode)]);
    let mut opened = 0;
    while let Some((from, depth)) = queue.pop_front() {
        if depth >= 3 {
            continue;
        }
        let origin = from.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let steps = libsearch::search_order(&from.dynamic, &origin, ld_library_path);
        let mut needed = from.dynamic.needed.clone();
        needed.sort_by_key(|n| !n.contains("libpython"));
        for name in needed {
            let Some(path) = libsearch::find(&name, &steps, root) else {
                if name.contains("libpython") {
                    return Err(TargetError::LibpythonNotFound {
                        path: from.path.clone(),
                        needed: name,
                    });
                }
                continue;
            };
            opened += 1;
            if opened > MAX_DEPENDENCY_FILES {
                return Ok(None);
            }
            let open_path = root.join(path.strip_prefix("/").unwrap_or(&path));
            let Ok(lib) = Module::open(&path, open_path) else {
                continue;
            };
            if !seen.insert((lib.dev, lib.inode)) {
                continue;
            }
            if lib.has_python_markers() {
                return Ok(Some(lib));
            }
            if name.contains("libpython") {
                return Err(no_markers_error(&lib));
            }
            queue.push_back((lib, depth + 1));
        }
    }
    Ok(None)
}

/// A running process and the modules in it that carry python markers.
#[derive(Debug, Clone)]
pub struct PythonProcess {
    /// The process.
    pub process: Process,
    /// Its modules with python markers, the executable first.
    pub modules: Vec<Module>,
}

/// Finds every mapped ELF file with python markers in process `pid`.
pub fn discover_process(pid: u32) -> Result<PythonProcess, TargetError> {
    discover_process_for(pid, Wanted::Markers)
}

/// [`discover_process`] for what is `wanted`: with
/// [`Wanted::Interpreter`], a process whose CPython has no markers gets
/// that CPython's file.
pub fn discover_process_for(pid: u32, wanted: Wanted) -> Result<PythonProcess, TargetError> {
    let process = Process::open(pid)?;
    let mut modules = Vec::new();
    // A CPython without markers among the mapped files (the executable,
    // or the libpython a shared build maps), for the error.
    let mut python: Option<Module> = None;
    // The file that defines the interpreter, for `Wanted::Interpreter`.
    let mut defining: Option<Module> = None;
    for file in process.mapped_code_files() {
        // Files that vanish or are not ELF (a JIT's memfd, a font) are not candidates.
        let Ok(module) = Module::open(&file.path, &file.open_path) else {
            continue;
        };
        if module.has_python_markers() {
            modules.push(module);
            continue;
        }
        if is_cpython(&module) && defining.is_none() {
            defining = Some(module.clone());
        }
        if module.version.is_some() && python.as_ref().is_none_or(|p| p.version.is_none())
            || module.exports_python_api && python.is_none()
        {
            python = Some(module);
        }
    }
    if modules.is_empty()
        && wanted == Wanted::Interpreter
        && let Some(m) = defining
    {
        modules.push(m);
    }
    if modules.is_empty() {
        return Err(match python {
            Some(m) => TargetError::NoMarkers {
                what: format!("process {} runs", process.label()),
                version: format!("{} from {},", m.version_suffix(), m.path.display()),
            },
            None => TargetError::NotPython {
                label: process.label(),
            },
        });
    }
    Ok(PythonProcess { process, modules })
}

/// The modules `--all` attaches to: the binaries named with `--binary`,
/// or, without any, every module with python markers that a running process
/// maps now, each file once.
pub fn all_modules(binaries: &[PathBuf]) -> Result<Vec<(Module, Vec<u32>)>, TargetError> {
    let mut by_inode: std::collections::BTreeMap<(u64, u64), (Module, Vec<u32>)> =
        Default::default();
    let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
    for path in binaries {
        let module = resolve_path(path, "/".as_ref(), ld_path.as_deref())?;
        by_inode.insert((module.dev, module.inode), (module, Vec::new()));
    }
    for p in discover_all()? {
        for m in p.modules {
            if binaries.is_empty() {
                by_inode
                    .entry((m.dev, m.inode))
                    .or_insert_with(|| (m.clone(), Vec::new()));
            }
            if let Some((_, pids)) = by_inode.get_mut(&(m.dev, m.inode)) {
                pids.push(p.process.pid);
            }
        }
    }
    Ok(by_inode.into_values().collect())
}

/// Every running process that maps a module with python markers, for
/// `--all`. Processes that vanish or cannot be read while scanning are skipped.
pub fn discover_all() -> Result<Vec<PythonProcess>, TargetError> {
    let pids = proc::all_pids().map_err(|e| TargetError::io("/proc", e))?;
    let me = std::process::id();
    Ok(pids
        .into_iter()
        .filter(|&pid| pid != me)
        .filter_map(|pid| discover_process(pid).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        assert_eq!(
            parse_shebang(b"#!/usr/bin/python3 -u\nimport x"),
            Some("/usr/bin/python3".into())
        );
        assert_eq!(
            parse_shebang(b"#!/usr/bin/env python3\n"),
            Some("python3".into())
        );
        assert_eq!(
            parse_shebang(b"#! /usr/bin/env -S PYTHONX=1 python3.11 -X dev\n"),
            Some("python3.11".into())
        );
        assert_eq!(parse_shebang(b"\x7fELF"), None);
        assert_eq!(parse_shebang(b"#!"), None);
    }
}
