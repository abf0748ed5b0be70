//! Rough edges a new user met: each says what is wrong in one line, in the
//! words of the thing that is wrong.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;

use crate::harness::{ChildGuard, pytap, pytap_bin, require_kernel, scratch, system_python};

#[test]
fn a_script_without_probes_says_so_instead_of_waiting() {
    require_kernel();
    let dir = scratch("rough-empty");
    let empty = dir.join("empty.stp");
    std::fs::write(&empty, "").unwrap();
    let comment = dir.join("comment.stp");
    std::fs::write(&comment, "# nothing but a comment\n").unwrap();
    let cmd = format!("{} -c pass", system_python().display());
    for args in [
        vec!["stap", empty.to_str().unwrap()],
        vec!["stap", comment.to_str().unwrap(), "-c", &cmd],
        vec!["stap", "-e", ""],
    ] {
        let msg = pytap(&args).one_line_error().to_string();
        assert!(msg.starts_with("pytap: no probes found"), "{args:?}: {msg}");
    }
    for args in [
        vec!["dtrace", "-n", ""],
        vec!["dtrace", "-s", empty.to_str().unwrap(), "-c", &cmd],
    ] {
        let msg = pytap(&args).one_line_error().to_string();
        assert!(
            msg.starts_with("pytap: no probes specified"),
            "{args:?}: {msg}"
        );
    }
}

#[test]
fn a_command_that_cannot_run_says_why() {
    require_kernel();
    let dir = scratch("rough-commands");
    for (command, why) in [
        ("/etc/passwd", "Permission denied (it is not executable)"),
        ("/etc", "it is a directory"),
        ("/no/such/program", "No such file or directory"),
        ("no-such-program-pytap", "command not found"),
    ] {
        let msg = pytap(&["trace", "-c", command])
            .one_line_error()
            .to_string();
        assert_eq!(msg, format!("pytap: cannot run {command}: {why}"));
    }
    // A command line that is not UTF-8 runs as `--` would run it (through
    // the shell, which splits bytes as typed).
    let bad = dir.join(std::ffi::OsStr::from_bytes(b"d\xfe"));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(
        crate::harness::root().join("examples/demo.py"),
        bad.join("demo.py"),
    )
    .unwrap();
    let mut line = system_python().into_os_string();
    line.push(" ");
    line.push(bad.join("demo.py"));
    let run = Command::new(pytap_bin())
        .args(["trace", "-m", "gc__start", "-m", "audit", "-c"])
        .arg(&line)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.contains("demo.event"), "{out}");
}

#[test]
fn a_target_killed_by_a_signal_is_not_said_to_have_exited() {
    require_kernel();
    let python = system_python().display().to_string();
    let killed = format!("{python} -c \"import os, signal; os.kill(os.getpid(), signal.SIGSEGV)\"");
    let run = pytap(&["trace", "-m", "gc__start", "-c", &killed]);
    assert!(
        run.stderr.contains("python3.11 was killed by SIGSEGV"),
        "{}",
        run.stderr
    );
    let exited = format!("{python} -c \"import os; os._exit(139)\"");
    let run = pytap(&["trace", "-m", "gc__start", "-c", &exited]);
    assert!(
        run.stderr.contains("python3.11 exited with status 139"),
        "{}",
        run.stderr
    );
}

/// A pyenv build of this machine kind's image (no markers).
fn pyenv_python(version: &str) -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
        .unwrap_or_else(|| PathBuf::from("/root/.pyenv"));
    let minor = version.rsplit_once('.').map_or(version, |(v, _)| v);
    let p = root
        .join("versions")
        .join(version)
        .join("bin")
        .join(format!("python{minor}"));
    assert!(
        p.is_file(),
        "prerequisite missing: the pyenv build {} (this machine kind's image has \
         $PYENV_ROOT/versions/{version})",
        p.display()
    );
    p
}

#[test]
fn a_python_without_markers_is_named_as_one() {
    require_kernel();
    let python = pyenv_python("3.12.1");
    let mut target = ChildGuard::spawn(Command::new(&python).args([
        "-c",
        "import sys\nprint('ready', flush=True)\nsys.stdin.read()",
    ]));
    target.wait_for_line("ready", std::time::Duration::from_secs(20));
    let pid = target.pid().to_string();
    for tool in ["info", "list"] {
        let msg = pytap(&[tool, "-p", &pid]).one_line_error().to_string();
        assert!(
            msg.contains(&format!(
                "process {pid} (python3.12) runs CPython 3.12.1 from "
            )) && msg.contains("libpython3.12.so.1.0, built without markers")
                && msg.contains("its events come from pytap's agent inside the interpreter")
                && msg.contains("--with-dtrace"),
            "{tool}: {msg}"
        );
    }
    // Every event: the agent, which a running 3.12 cannot load.
    for tool in ["flow", "gc"] {
        let msg = pytap(&[tool, "-p", &pid]).one_line_error().to_string();
        assert!(
            msg.contains(&format!("pid {pid} runs CPython 3.12 from "))
                && msg.contains("libpython3.12.so.1.0, built without markers")
                && msg.contains("a running 3.12 has no way to load it"),
            "{tool}: {msg}"
        );
    }
    let msg = pytap(&["info", python.to_str().unwrap()])
        .one_line_error()
        .to_string();
    assert!(
        msg.contains("is CPython 3.12.1 built without markers"),
        "{msg}"
    );
}
