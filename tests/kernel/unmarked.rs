//! The views on CPython builds without markers (this machine's pyenv
//! builds, 3.8 to 3.13, and each Debian fixture's twin with its
//! `.note.stapsdt` removed): function events from pytap's agent inside the
//! interpreter, exactly as the markers give them elsewhere, against the
//! same `sys.setprofile` oracle; a running one is attached on 3.14 and
//! refused with its reason before.

use std::process::Command;
use std::time::Duration;

use super::in_process::{counts_are_exact, flow_sequences};
use crate::harness::{
    ChildGuard, fib_calls, fixture_without_markers, fixtures_without_markers, oracle, pyenv_python,
    pyenv_versions, pytap, require_kernel, scratch, script, tool_jsonl,
};

/// Every interpreter without markers: (label, path).
fn unmarked() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = pyenv_versions()
        .iter()
        .map(|v| (format!("pyenv {v}"), pyenv_python(v).display().to_string()))
        .collect();
    assert_eq!(
        fixtures_without_markers().len(),
        5,
        "prerequisite missing: the fixtures' marker-less twins (scripts/fetch-pythons.sh makes them)"
    );
    for (version, twin) in fixtures_without_markers() {
        all.push((format!("twin {version}"), twin.binary.display().to_string()));
    }
    all
}

#[test]
fn flow_matches_the_setprofile_oracle_on_every_build_without_markers() {
    require_kernel();
    for (label, py) in unmarked() {
        let (lines, run) = tool_jsonl("flow", &["--", &py, &script("threaded.py")]);
        run.ok();
        let want = oracle::threaded(&py);
        assert_eq!(want.len(), 4, "{label}: four threads in the oracle");
        assert_eq!(
            flow_sequences(&lines, &script("threaded.py")),
            want,
            "{label}"
        );
        assert!(run.stderr.contains(" 0 lost"), "{label}: {}", run.stderr);
        assert!(
            !run.stderr.contains("returns without an entry"),
            "{label}: {}",
            run.stderr
        );
    }
}

#[test]
fn calls_and_top_count_exactly_on_every_build_without_markers() {
    require_kernel();
    let sink = scratch("unmarked-counts").join("elapsed");
    let sink = sink.to_str().unwrap();
    for (label, py) in unmarked() {
        counts_are_exact(&label, &py, sink, 16, 14);
    }
}

#[test]
fn what_needs_the_markers_is_said_once_and_the_rest_traced() {
    require_kernel();
    let py = pyenv_python("3.12").display().to_string();
    let sink = scratch("unmarked-trace").join("elapsed");
    let (lines, run) = tool_jsonl(
        "trace",
        &["--", &py, &script("fib.py"), "5", sink.to_str().unwrap()],
    );
    run.ok();
    let entries = lines
        .iter()
        .filter(|l| l["marker"] == "function__entry" && l["funcname"] == "fib")
        .count() as u64;
    assert_eq!(entries, fib_calls(5), "{}", run.stderr);
    // Every function event came from the agent, which records no CPU.
    assert!(
        lines
            .iter()
            .filter(|l| l["marker"] == "function__entry")
            .all(|l| l["cpu"].is_null()),
        "{:?}",
        lines.first()
    );
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("built without markers"))
        .collect();
    assert_eq!(said.len(), 1, "{}", run.stderr);
    assert!(
        said[0].contains("gc__start, gc__done, import__find__load__start")
            && said[0].contains("need the markers and are not traced"),
        "{}",
        said[0]
    );
    // `gc` wants only what needs the markers: refused, saying what works.
    let run = pytap(&["gc", "--", &py, "-c", "pass"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.one_line_error()
            .contains("its gc, import and audit events need them"),
        "{}",
        run.stderr
    );
}

/// `-p` on a 3.14 without markers: PEP 768 as with them; the agent's own
/// frames are never shown.
#[test]
fn a_running_3_14_without_markers_is_attached() {
    require_kernel();
    let py = fixture_without_markers("3.14").binary.display().to_string();
    let mut target = ChildGuard::spawn(Command::new(&py).args([
        "-c",
        "import time\ndef tick(i):\n    return i\nprint('ready', flush=True)\n\
         for i in range(400):\n    tick(i)\n    time.sleep(0.01)\nprint('done')",
    ]));
    target.wait_for_line("ready", Duration::from_secs(10));
    let pid = target.pid().to_string();
    let (rows, run) = tool_jsonl("calls", &["-n", "0", "-p", &pid, "--duration", "1.5"]);
    run.ok();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["funcname"].as_str()).collect();
    // Only the program's function: none of the agent's, though 3.14 runs
    // the attached agent as `<string>`, the file name of `-c` code too.
    assert_eq!(names, ["tick"], "{rows:?}\n{}", run.stderr);
    let ticks = rows.iter().find(|r| r["funcname"] == "tick").unwrap()["calls"]
        .as_u64()
        .unwrap();
    assert!((50..=160).contains(&ticks), "{ticks} ticks in 1.5 s");
    let (code, rest) = target.finish();
    assert_eq!((code, rest.as_str()), (0, "done\n"));
}

#[test]
fn a_running_build_without_markers_before_3_14_is_refused_with_its_reason() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13"] {
        let py = pyenv_python(version);
        let child = crate::harness::spawn_waiting_python(&py, "def f(): pass");
        let pid = child.pid().to_string();
        let run = pytap(&["flow", "-p", &pid]);
        assert_eq!(run.code, 2, "{version}: {}", run.stderr);
        let line = run.one_line_error().to_string();
        assert!(
            line.contains(&format!("pid {pid} runs CPython {version} from "))
                && line.contains("built without markers")
                && line.contains(&format!("a running {version} has no way to load it"))
                && line.contains("`pytap profile -p`"),
            "{version}: {line}"
        );
    }
}
