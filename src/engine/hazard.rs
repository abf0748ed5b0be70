//! Targets that CPython's own probe code would harm.
//!
//! With `function__entry`, `function__return` or `line` armed, CPython
//! (every version with those markers: 3.8-3.11, 3.15) converts each code
//! object's file and function names with `PyUnicode_AsUTF8` and does not
//! check the result. A name that is not valid UTF-8 (Python decodes a
//! path's bytes to lone surrogates) makes the conversion fail and leaves
//! its exception set, and the program dies with `SystemError: ... returned
//! a result with an exception set` (CPython gh-156118). Untraced, the same
//! program runs.
//!
//! Such names reach the probe code through every path Python code is run
//! from: the script and its directory (the command line), the working
//! directory (`''` on `sys.path`), the interpreter's own location (the
//! standard library is found from it), the variables that add to
//! `sys.path` or run code (`PYTHONPATH`, `PYTHONHOME`, `PYTHONSTARTUP`,
//! `PYTHONUSERBASE`, and `HOME` when a user site directory may be under
//! it), and the files the process maps (an extension module from such a
//! directory, whose package's code lives beside it). pytap looks at all of
//! them (from `/proc/PID` while a launched process is held at its exec, or
//! of a running process, and from its own command line and environment
//! before it launches one) and does not arm those markers where one is not
//! UTF-8, unless asked to with `--force`; where the in-process capture can
//! serve the function events instead (a launched 3.8+, a running
//! 3.14+), it does, since it reads names without that fault.
//!
//! What no one can know beforehand is a name made at run time: code
//! compiled with such a file name, or a code object renamed to one. pytap
//! cannot prevent that (docs/output.md says so); `pytap info` names the
//! versions that have the fault.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use anyhow::{Result, bail};

use crate::cpython::Marker;
use crate::engine::plan::AttachTarget;
use crate::notice;

/// The markers whose probe code fails on a name that is not UTF-8.
pub const AFFECTED: [Marker; 3] = [Marker::FunctionEntry, Marker::FunctionReturn, Marker::Line];

/// The CPython issue, for messages.
pub const CPYTHON_ISSUE: &str = "CPython gh-156118";

/// Variables whose values become places Python code is run from.
const PATH_VARIABLES: [&str; 4] = [
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
];

/// Whether `markers` include one CPython's probe code fails in.
pub fn arms_affected(markers: &BTreeSet<Marker>) -> bool {
    AFFECTED.iter().any(|m| markers.contains(m))
}

/// What of a process tells where its Python code comes from.
#[derive(Debug, Default, Clone)]
pub struct Exposure {
    /// The command line, NUL-separated (the program first).
    pub cmdline: Vec<u8>,
    /// The working directory.
    pub cwd: Vec<u8>,
    /// The executable.
    pub exe: Vec<u8>,
    /// The environment, NUL-separated `NAME=VALUE`.
    pub environ: Vec<u8>,
    /// The files it maps.
    pub mapped: Vec<Vec<u8>>,
}

impl Exposure {
    /// A running process's (or one held at its exec), from `/proc/PID`.
    pub fn of_process(pid: u32) -> Option<Exposure> {
        let proc = |name: &str| format!("/proc/{pid}/{name}");
        let link = |name: &str| {
            std::fs::read_link(proc(name))
                .map(|p| p.into_os_string().into_vec())
                .unwrap_or_default()
        };
        let maps = std::fs::read(proc("maps")).unwrap_or_default();
        Some(Exposure {
            cmdline: std::fs::read(proc("cmdline")).ok()?,
            cwd: link("cwd"),
            exe: link("exe"),
            environ: std::fs::read(proc("environ")).unwrap_or_default(),
            mapped: maps
                .split(|&b| b == b'\n')
                .filter_map(|line| {
                    // The path is the sixth field, after the inode.
                    let at = line.iter().position(|&b| b == b'/')?;
                    Some(line[at..].to_vec())
                })
                .collect(),
        })
    }

    /// A command pytap is about to launch: its arguments, the program it
    /// runs, and pytap's own working directory and environment (which it
    /// inherits).
    pub fn of_launch(argv: &[OsString], program: Option<&Path>) -> Exposure {
        let mut cmdline = Vec::new();
        for arg in argv {
            cmdline.extend_from_slice(arg.as_bytes());
            cmdline.push(0);
        }
        let mut environ = Vec::new();
        for (name, value) in std::env::vars_os() {
            environ.extend_from_slice(name.as_bytes());
            environ.push(b'=');
            environ.extend_from_slice(value.as_bytes());
            environ.push(0);
        }
        Exposure {
            cmdline,
            cwd: std::env::current_dir()
                .map(|d| d.into_os_string().into_vec())
                .unwrap_or_default(),
            exe: program
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .unwrap_or_default(),
            environ,
            mapped: Vec::new(),
        }
    }

    /// The first place Python code could come from whose name is not
    /// UTF-8, said as a message's subject (`its argument /tmp/b\u{fffd}/s.py`).
    pub fn first_non_utf8(&self) -> Option<String> {
        let bad = |b: &[u8]| std::str::from_utf8(b).is_err();
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if bad(&self.cwd) {
            return Some(format!("its working directory {}", lossy(&self.cwd)));
        }
        if bad(&self.exe) {
            return Some(format!("its interpreter's path {}", lossy(&self.exe)));
        }
        // The program itself is not a file name Python code runs from (its
        // location is: `exe` above).
        if let Some(arg) = self.cmdline.split(|&b| b == 0).skip(1).find(|a| bad(a)) {
            return Some(format!("its argument {}", lossy(arg)));
        }
        for entry in self.environ.split(|&b| b == 0) {
            let Some(eq) = entry.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            let places_code = PATH_VARIABLES.iter().any(|v| v.as_bytes() == name)
                || (name == b"HOME"
                    && Path::new(std::ffi::OsStr::from_bytes(value))
                        .join(".local")
                        .exists());
            if places_code && bad(value) {
                return Some(format!(
                    "its environment's {}={}",
                    lossy(name),
                    lossy(value)
                ));
            }
        }
        self.mapped
            .iter()
            .find(|p| bad(p))
            .map(|p| format!("a file it maps, {}", lossy(p)))
    }
}

/// [`Exposure::first_non_utf8`] of a live process.
pub fn non_utf8_path(pid: u32) -> Option<String> {
    Exposure::of_process(pid)?.first_non_utf8()
}

/// The message for process `pid` whose `what` is not UTF-8.
pub fn message(pid: u32, what: &str) -> String {
    format!(
        "process {pid}: {what} is not valid UTF-8, and CPython's function and line markers make such a program fail (SystemError, {CPYTHON_ISSUE}); pytap does not arm them: --force arms them anyway"
    )
}

/// The message for a process of a traced tree left untraced for `what`.
pub fn not_traced_message(pid: u32, what: &str) -> String {
    format!(
        "process {pid} not traced: {what} is not valid UTF-8, and CPython's function and line markers make such a program fail (SystemError, {CPYTHON_ISSUE}): --force arms them anyway"
    )
}

/// The message for a launched command whose function events come from
/// inside the interpreter instead, for `what`.
pub fn captured_message(what: &str) -> String {
    format!(
        "the command's {what} is not valid UTF-8, and CPython's function and line markers make such a program fail (SystemError, {CPYTHON_ISSUE}): function events come from inside the interpreter instead (--capture markers --force arms the markers anyway)",
        what = what.strip_prefix("its ").unwrap_or(what)
    )
}

/// The markers pytap may arm in the processes of `targets`: all of them
/// with `force` or when no process has a non-UTF-8 path; otherwise an
/// error when the user named the markers (`strict`), else the markers
/// without the affected ones, with a note. Processes whose function
/// events the in-process capture serves (`capture`) arm none of those
/// markers and are not looked at.
pub fn check(
    targets: &[AttachTarget],
    markers: &BTreeSet<Marker>,
    strict: bool,
    force: bool,
    capture: crate::engine::capture_mode::CaptureMode,
) -> Result<BTreeSet<Marker>> {
    if force || !arms_affected(markers) {
        return Ok(markers.clone());
    }
    let pids: BTreeSet<u32> = targets
        .iter()
        .filter(|t| !capture.serves_module(&t.module))
        .flat_map(|t| t.pids.iter().copied())
        .collect();
    for pid in pids {
        if let Some(what) = non_utf8_path(pid) {
            if strict {
                bail!("{}", message(pid, &what));
            }
            notice!("{}", message(pid, &what));
            return Ok(markers
                .iter()
                .copied()
                .filter(|m| !AFFECTED.contains(m))
                .collect());
        }
    }
    Ok(markers.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(cmdline: &[u8], cwd: &[u8]) -> Exposure {
        Exposure {
            cmdline: cmdline.to_vec(),
            cwd: cwd.to_vec(),
            exe: b"/usr/bin/python3".to_vec(),
            ..Exposure::default()
        }
    }

    #[test]
    fn every_place_code_comes_from_is_looked_at() {
        assert_eq!(
            exposure(b"python3\0app.py\0", b"/srv").first_non_utf8(),
            None
        );
        assert_eq!(
            exposure(b"python3\0/tmp/bad\xffdir/s.py\0", b"/srv").first_non_utf8(),
            Some("its argument /tmp/bad\u{fffd}dir/s.py".into())
        );
        assert_eq!(
            exposure(b"python3\0s.py\0", b"/tmp/bad\xff").first_non_utf8(),
            Some("its working directory /tmp/bad\u{fffd}".into())
        );
        // The program as typed is not where code comes from; its real
        // location is.
        assert_eq!(
            exposure(b"/opt/\xff/python3\0s.py\0", b"/").first_non_utf8(),
            None
        );
        let mut e = exposure(b"python3\0", b"/");
        e.exe = b"/opt/\xff/bin/python3".to_vec();
        assert_eq!(
            e.first_non_utf8(),
            Some("its interpreter's path /opt/\u{fffd}/bin/python3".into())
        );
        let mut e = exposure(b"python3\0-c\0import h\0", b"/");
        e.environ = b"LANG=C\0PYTHONPATH=/srv:l\xff\0TERM=\xff\0".to_vec();
        assert_eq!(
            e.first_non_utf8(),
            Some("its environment's PYTHONPATH=/srv:l\u{fffd}".into())
        );
        e.environ = b"TERM=\xff\0".to_vec();
        assert_eq!(e.first_non_utf8(), None);
        e.mapped = vec![
            b"/usr/lib/libc.so.6".to_vec(),
            b"/opt/ext\xff/m.so".to_vec(),
        ];
        assert_eq!(
            e.first_non_utf8(),
            Some("a file it maps, /opt/ext\u{fffd}/m.so".into())
        );
    }
}
