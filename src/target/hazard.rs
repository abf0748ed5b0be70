//! Targets that CPython's own probe code would harm.
//!
//! With `function__entry`, `function__return` or `line` armed, CPython
//! (every version with those markers: 3.8-3.11, 3.15) converts each code
//! object's file name with `PyUnicode_AsUTF8` and does not check the
//! result. A path that is not valid UTF-8 (Python decodes it to lone
//! surrogates) makes the conversion fail and leaves its exception set, and
//! the program dies with `SystemError: ... returned a result with an
//! exception set` (CPython gh-156118). Untraced, the same program runs.
//!
//! pytap promises not to harm its target, so where it can know beforehand
//! (a script path or working directory that is not UTF-8, read from
//! `/proc/PID/cmdline` and `/proc/PID/cwd` while the process is held at its
//! exec, or of a running process), it does not arm those markers unless
//! asked to with `--force`.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Result, bail};

use crate::cpython::Marker;
use crate::engine::plan::AttachTarget;
use crate::notice;

/// The markers whose probe code fails on a file name that is not UTF-8.
pub const AFFECTED: [Marker; 3] = [Marker::FunctionEntry, Marker::FunctionReturn, Marker::Line];

/// The CPython issue, for messages.
pub const CPYTHON_ISSUE: &str = "CPython gh-156118";

/// Whether `markers` include one CPython's probe code fails in.
pub fn arms_affected(markers: &BTreeSet<Marker>) -> bool {
    AFFECTED.iter().any(|m| markers.contains(m))
}

/// The first argument (after the program) or working directory of a
/// command line that is not valid UTF-8: `cmdline` is NUL-separated.
pub fn first_non_utf8(cmdline: &[u8], cwd: &[u8]) -> Option<String> {
    if std::str::from_utf8(cwd).is_err() {
        return Some(format!(
            "its working directory {}",
            String::from_utf8_lossy(cwd)
        ));
    }
    cmdline
        .split(|&b| b == 0)
        .skip(1)
        .find(|arg| std::str::from_utf8(arg).is_err())
        .map(|arg| format!("its argument {}", String::from_utf8_lossy(arg)))
}

/// [`first_non_utf8`] of a live process.
pub fn non_utf8_path(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    first_non_utf8(&cmdline, cwd.as_os_str().as_bytes())
}

/// The message for process `pid` whose `what` is not UTF-8.
pub fn message(pid: u32, what: &str) -> String {
    format!(
        "process {pid}: {what} is not valid UTF-8, and CPython's function and line markers make such a program fail (SystemError, {CPYTHON_ISSUE}); pytap does not arm them: --force arms them anyway"
    )
}

/// The markers pytap may arm in the processes of `targets`: all of them
/// with `force` or when no process has a non-UTF-8 path; otherwise an
/// error when the user named the markers (`strict`), else the markers
/// without the affected ones, with a note.
pub fn check(
    targets: &[AttachTarget],
    markers: &BTreeSet<Marker>,
    strict: bool,
    force: bool,
) -> Result<BTreeSet<Marker>> {
    if force || !arms_affected(markers) {
        return Ok(markers.clone());
    }
    let pids: BTreeSet<u32> = targets
        .iter()
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

    #[test]
    fn non_utf8_arguments_and_directories_are_found() {
        assert_eq!(first_non_utf8(b"python3\0app.py\0", b"/srv"), None);
        assert_eq!(
            first_non_utf8(b"python3\0/tmp/bad\xffdir/s.py\0", b"/srv"),
            Some("its argument /tmp/bad\u{fffd}dir/s.py".into())
        );
        assert_eq!(
            first_non_utf8(b"python3\0s.py\0", b"/tmp/bad\xff"),
            Some("its working directory /tmp/bad\u{fffd}".into())
        );
        // The interpreter's own path is not a file name Python code runs from.
        assert_eq!(first_non_utf8(b"/opt/\xff/python3\0s.py\0", b"/"), None);
    }
}
