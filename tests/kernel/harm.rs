//! The traced program never fails where it would not untraced: names that
//! are not UTF-8 (which CPython's own function-marker code fails on,
//! gh-156118) from any place code comes from, and a 3.14 attach that pytap
//! gives up on leaves nothing to run later.

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{
    ChildGuard, fixture, pytap_bin, require_kernel, scratch, system_python, wait_until,
};

/// A directory whose name is not UTF-8, holding module `h` (`h.h()` is 1).
fn bad_dir(test: &str) -> std::path::PathBuf {
    let dir = scratch(test);
    let bad = dir.join(std::ffi::OsStr::from_bytes(b"l\xff"));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("h.py"), "def h():\n    return 1\n").unwrap();
    bad
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    out: String,
}

/// `pytap ARGS -o OUT -- PYTHON -c CODE` with variable `var` set to `path`.
fn traced(
    args: &[&str],
    python: &str,
    code: &str,
    (var, path): (&str, &std::path::Path),
    test: &str,
) -> Ran {
    let out = scratch(&format!("{test}-out")).join("out");
    let run = Command::new(pytap_bin())
        .args(args)
        .arg("-o")
        .arg(&out)
        .args(["--", python, "-c", code])
        .env(var, path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Ran {
        code: run.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&run.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&run.stderr).into_owned(),
        out: std::fs::read_to_string(&out).unwrap_or_default(),
    }
}

const IMPORTS_H: &str = "import h; h.h(); print('ran ok')";

#[test]
fn a_module_from_a_non_utf8_directory_never_kills_the_program() {
    require_kernel();
    let bad = bad_dir("harm-pythonpath");
    // Their function events come from inside the interpreter instead of
    // the markers (before: SystemError, exit 1); 3.9's through the
    // compiled profile function.
    for python in [
        system_python().display().to_string(),
        fixture("3.15").binary.display().to_string(),
        fixture("3.9").binary.display().to_string(),
    ] {
        let run = traced(
            &["flow"],
            &python,
            IMPORTS_H,
            ("PYTHONPATH", &bad),
            "harm-flow",
        );
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "ran ok\n"),
            "{python}: {}",
            run.stderr
        );
        // 3.11's default is the agent already (said once); the others are
        // moved to it for this.
        let said = if python.contains("3.11") {
            run.stderr
                .contains("function events from pytap's agent inside the interpreter")
        } else {
            run.stderr
                .contains("harm-pythonpath/l\u{fffd} is not valid UTF-8")
                && run
                    .stderr
                    .contains("function events come from inside the interpreter")
        };
        assert!(said, "{python}: {}", run.stderr);
        assert_eq!(
            run.out.matches("=> h in ").count(),
            1,
            "{python}:\n{}",
            run.out
        );
        assert_eq!(
            run.out.matches("<= h in ").count(),
            1,
            "{python}:\n{}",
            run.out
        );
    }
    // Markers only: flow, which needs the function markers, refuses in one
    // line; trace leaves them out, says why, and traces the rest, the
    // program unharmed.
    let py39 = fixture("3.9").binary.display().to_string();
    let run = traced(
        &["flow", "--capture", "markers"],
        &py39,
        IMPORTS_H,
        ("PYTHONPATH", &bad),
        "harm-flow-39",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--force arms them anyway"),
        "{}",
        run.stderr
    );
    let run = traced(
        &["trace", "--capture", "markers"],
        &py39,
        IMPORTS_H,
        ("PYTHONPATH", &bad),
        "harm-trace-39",
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "ran ok\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("pytap does not arm them"),
        "{}",
        run.stderr
    );
    assert!(run.out.contains("import__find__load__start"), "{}", run.out);
    assert!(!run.out.contains("function__entry"), "{}", run.out);
}

#[test]
fn a_child_whose_names_may_not_be_utf8_is_left_untraced() {
    require_kernel();
    let bad = bad_dir("harm-child");
    // A 3.11 parent (nothing wrong with it) starts a 3.9 child with the
    // directory on its path (handed over in a variable that does not place
    // code).
    let code = format!(
        "import os, subprocess\n\
         env = dict(os.environ, PYTHONPATH=os.environ['CHILD_PATH'])\n\
         r = subprocess.run([{:?}, '-c', \"import h; h.h(); print('child ok')\"], env=env)\n\
         print('parent saw', r.returncode)\n",
        fixture("3.9").binary.display().to_string()
    );
    let run = traced(
        &["trace", "-m", "function__entry"],
        &system_python().display().to_string(),
        &code,
        ("CHILD_PATH", &bad),
        "harm-child",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "child ok\nparent saw 0\n", "{}", run.stderr);
    assert!(
        run.stderr
            .contains("not traced: its environment's PYTHONPATH"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_attach_given_up_on_a_stopped_314_leaves_nothing_to_run() {
    require_kernel();
    let python = &fixture("3.14").binary;
    let err = scratch("harm-attach").join("stderr");
    // Guards: a failed assertion kills them (a stopped target would stay).
    let mut target = ChildGuard::spawn(
        Command::new(python)
            .args([
                "-c",
                "import time\nprint('ready', flush=True)\nfor i in range(50):\n    time.sleep(0.1)\nprint('done')",
            ])
            .stderr(std::fs::File::create(&err).unwrap()),
    );
    let pid = target.pid();
    target.wait_for_line("ready", Duration::from_secs(20));
    pytap_sys::process::kill(pid, pytap_sys::signal::SIGSTOP).unwrap();
    let said_to = err.with_file_name("pytap.stderr");
    let mut tracer = ChildGuard::spawn(
        Command::new(pytap_bin())
            .args(["flow", "-o", "/dev/null", "-p", &pid.to_string()])
            .stderr(std::fs::File::create(&said_to).unwrap()),
    );
    // The agent is asked for; after pytap's patience, it says why it has
    // not run.
    let stopped = "it is stopped (by a signal or a debugger)";
    wait_until(
        "pytap to say why the agent has not run",
        Duration::from_secs(20),
        || std::fs::read_to_string(&said_to).is_ok_and(|s| s.contains(stopped)),
    );
    pytap_sys::process::kill(tracer.pid(), pytap_sys::signal::SIGINT).unwrap();
    tracer.wait();
    let said = std::fs::read_to_string(&said_to).unwrap();
    assert!(
        said.contains("it is stopped (by a signal or a debugger)"),
        "{said}"
    );
    pytap_sys::process::kill(pid, pytap_sys::signal::SIGCONT).unwrap();
    target.wait_for_line("done", Duration::from_secs(20));
    let (code, _) = target.finish();
    assert_eq!(code, 0);
    // It used to print "Can't open debugger script ..." and a traceback.
    assert_eq!(std::fs::read_to_string(&err).unwrap(), "");
}

/// What a command started by pytap blocks and ignores, as it prints it.
const SIGNALS_SEEN: &str = "import signal\n\
    print('blocked', sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])))\n\
    print('term', signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)\n\
    print('hup', signal.getsignal(signal.SIGHUP) == signal.SIG_DFL)\n";

#[test]
fn a_command_pytap_starts_gets_no_blocked_signals_of_pytap() {
    require_kernel();
    let py = fixture("3.13").binary.display().to_string();
    let untraced = Command::new(&py)
        .args(["-c", SIGNALS_SEEN])
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&untraced.stdout).into_owned();
    assert_eq!(expected, "blocked []\nterm True\nhup True\n");
    // The sampler's command, a script's that attaches nothing, and the
    // traced command (pytap blocks SIGINT, SIGTERM, SIGHUP, SIGQUIT and
    // SIGWINCH for its signalfd).
    let quoted = format!(
        "{py} -c \"{}\"",
        SIGNALS_SEEN.replace('\n', "; ").trim_end_matches("; ")
    );
    for args in [
        vec![
            "profile",
            "--format",
            "folded",
            "-o",
            "/dev/null",
            "--",
            &py,
            "-c",
            SIGNALS_SEEN,
        ],
        vec!["dtrace", "-q", "-n", "tick-10s { exit(0); }", "-c", &quoted],
    ] {
        let run = Command::new(pytap_bin()).args(&args).output().unwrap();
        // (D ends its output with an empty line.)
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim_end(),
            expected.trim_end(),
            "{:?}: {}",
            &args[..2],
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
