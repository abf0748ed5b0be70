//! `pytap dump` against the interpreter's own view of its threads
//! (`sys._current_frames()`, written by `tests/py/parked.py`): exactly the
//! same frames, files and lines, on every interpreter here, with markers
//! or without.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::fixtures::{self, require_kernel, scratch};
use crate::harness::guard::ChildGuard;
use crate::harness::process::wait_until;
use crate::harness::{pytap_bin, root};

/// A parked target and the oracle it wrote.
struct Parked {
    guard: ChildGuard,
    oracle: Vec<Value>,
}

fn park(mut cmd: Command, oracle: &Path) -> Parked {
    let guard = ChildGuard::start(&mut cmd);
    wait_until(
        "the parked target's oracle",
        Duration::from_secs(20),
        || oracle.is_file(),
    );
    let text = std::fs::read_to_string(oracle).unwrap();
    let oracle: Vec<Value> = serde_json::from_str(&text).unwrap();
    // The reporter thread ends after writing: wait until only the two
    // parked threads are left.
    let pid = guard.pid();
    wait_until("the reporter thread's end", Duration::from_secs(10), || {
        std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count()) == 2
    });
    Parked { guard, oracle }
}

fn park_python(python: &Path, name: &str) -> Parked {
    let dir = scratch(name);
    let oracle = dir.join("oracle.json");
    let mut cmd = Command::new(python);
    cmd.arg(root().join("tests/py/parked.py")).arg(&oracle);
    park(cmd, &oracle)
}

fn dump_jsonl(pid: u32) -> Vec<Value> {
    let out = Command::new(pytap_bin())
        .args(["dump", "-p", &pid.to_string(), "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pytap dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The dump of `parked` equals its oracle: both threads, every frame.
#[track_caller]
fn assert_matches(parked: &Parked, what: &str) {
    let dump = dump_jsonl(parked.guard.pid());
    assert_eq!(dump.len(), 2, "{what}: threads in {dump:?}");
    for want in &parked.oracle {
        let ident = want["ident"].as_u64().unwrap();
        let got = dump
            .iter()
            .find(|t| t["thread_id"].as_u64() == Some(ident))
            .unwrap_or_else(|| panic!("{what}: no thread {ident} in {dump:?}"));
        let frames: Vec<Value> = got["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| serde_json::json!([f["function"], f["file"], f["line"]]))
            .collect();
        assert_eq!(
            &Value::Array(frames),
            &want["frames"],
            "{what}: thread {ident}"
        );
        assert_eq!(
            got["tid"], want["native_id"],
            "{what}: thread {ident}'s tid"
        );
        assert_eq!(
            got["gil"], false,
            "{what}: both threads wait without the GIL"
        );
        assert_eq!(got["active"], false, "{what}: both threads sleep");
        assert_eq!(got["error"], Value::Null, "{what}");
        assert_eq!(got["truncated"], false, "{what}");
    }
}

#[test]
fn dump_gives_the_interpreters_own_stacks_on_every_debian_fixture() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let parked = park_python(
            &fixtures::fixture(version).wrapper,
            &format!("dump-{version}"),
        );
        assert_matches(&parked, version);
    }
}

#[test]
fn dump_gives_the_interpreters_own_stacks_on_every_pyenv_build() {
    require_kernel();
    for version in fixtures::pyenv_versions() {
        let python = fixtures::pyenv_python(version);
        let parked = park_python(&python, &format!("dump-pyenv-{version}"));
        assert_matches(&parked, &format!("pyenv {version}"));
    }
}

#[test]
fn dump_reads_builds_whose_markers_were_removed() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let twin = fixtures::fixture_without_markers(version);
        let parked = park_python(&twin.wrapper, &format!("dump-twin-{version}"));
        assert_matches(&parked, &format!("{version} without markers"));
    }
}

#[test]
fn dump_reads_an_interpreter_embedded_through_libpython() {
    require_kernel();
    let dir = scratch("dump-embed");
    let oracle = dir.join("oracle.json");
    let script = root().join("tests/py/parked.py");
    let code = format!(
        "import sys; sys.argv = [{s:?}, {o:?}]; exec(compile(open({s:?}).read(), {s:?}, 'exec'))",
        s = script.display().to_string(),
        o = oracle.display().to_string()
    );
    let mut cmd = Command::new(fixtures::embed_program());
    cmd.arg(code);
    let parked = park(cmd, &oracle);
    assert_matches(&parked, "embedded 3.11");
    let text = dump_text(parked.guard.pid());
    assert!(text.contains("libpython3.11.so"), "{text}");
}

fn dump_text(pid: u32) -> String {
    let out = Command::new(pytap_bin())
        .args(["dump", "-p", &pid.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dump_text_shows_threads_innermost_first() {
    require_kernel();
    let parked = park_python(&fixtures::fixture("3.15").wrapper, "dump-text");
    let text = dump_text(parked.guard.pid());
    let script = root().join("tests/py/parked.py").display().to_string();
    let pid = parked.guard.pid();
    assert!(
        text.starts_with(&format!("Process python3.15 (pid {pid}): CPython 3.15.0 (")),
        "{text}"
    );
    let main = format!(
        "Thread \"python3.15\" (tid {pid}, idle)\n    main_loop ({script}:45)\n    <module> ({script}:85)\n"
    );
    assert!(text.contains(&main), "{text}");
    assert!(
        text.contains(&format!("    h ({script}:23)\n    g ({script}:27)\n    f ({script}:31)\n    K.work ({script}:36)\n")),
        "{text}"
    );
}

#[test]
fn dump_names_the_thread_holding_the_gil() {
    require_kernel();
    for version in ["3.11", "3.12", "3.13", "3.15"] {
        let python: PathBuf = if version == "3.12" {
            fixtures::pyenv_python(version)
        } else {
            fixtures::fixture(version).wrapper.clone()
        };
        // One thread spins in Python and never waits, so it keeps the GIL
        // (nobody asks for it); the main thread waits without it.
        let mut spin = ChildGuard::spawn(Command::new(&python).args([
            "-c",
            "import threading, sys\n\
             def spin():\n    print(threading.get_native_id(), flush=True)\n    while True: pass\n\
             threading.Thread(target=spin, daemon=True).start()\n\
             threading.Event().wait()",
        ]));
        let mut line = String::new();
        std::io::BufRead::read_line(spin.stdout.as_mut().unwrap(), &mut line).unwrap();
        let spinner: u64 = line.trim().parse().unwrap();
        // Until the main thread is in its wait, it may still take the GIL
        // back on its way there.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let dump = dump_jsonl(spin.pid());
        let holders: Vec<u64> = dump
            .iter()
            .filter(|t| t["gil"] == true)
            .map(|t| t["tid"].as_u64().unwrap())
            .collect();
        assert_eq!(holders, [spinner], "{version}: {dump:?}");
        let t = dump
            .iter()
            .find(|t| t["tid"].as_u64() == Some(spinner))
            .unwrap();
        assert_eq!(t["frames"][0]["function"], "spin", "{version}");
        spin.kill();
    }
}

#[test]
fn dump_refuses_what_is_not_python_with_one_line() {
    require_kernel();
    let mut sleeper = ChildGuard::start(Command::new("sleep").arg("60"));
    let out = Command::new(pytap_bin())
        .args(["dump", "-p", &sleeper.pid().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not running Python"), "{err}");
    sleeper.kill();
    let out = Command::new(pytap_bin())
        .args(["dump", "-p", "999999999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process with pid 999999999"));
}

#[test]
fn dump_locals_shows_simple_values_and_sizes_on_every_interpreter() {
    require_kernel();
    let mut pythons: Vec<(String, PathBuf)> = ["3.9", "3.11", "3.13", "3.14", "3.15"]
        .iter()
        .map(|v| (v.to_string(), fixtures::fixture(v).wrapper.clone()))
        .collect();
    for v in fixtures::pyenv_versions() {
        pythons.push((format!("pyenv {v}"), fixtures::pyenv_python(v)));
    }
    let want = [
        ("n", "42"),
        ("big", "-1180591620717411303424"),
        ("s", "'héllo'"),
        ("b", "b'\\x00x'"),
        ("f", "2.5"),
        ("none", "None"),
        ("flag", "True"),
        ("items", "<list of 3 items>"),
        ("pair", "<tuple of 2 items>"),
        ("d", "<dict of 1 item>"),
        ("obj", "<module at "),
        ("closure", "<function at "),
        ("ready", "<Event at "),
    ];
    for (what, python) in pythons {
        let mut target =
            ChildGuard::spawn(Command::new(&python).arg(root().join("tests/py/locals.py")));
        target.wait_for_line("ready", Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(100));
        let out = Command::new(pytap_bin())
            .args([
                "dump",
                "--locals",
                "--format",
                "jsonl",
                "-p",
                &target.pid().to_string(),
            ])
            .output()
            .unwrap();
        target.kill();
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let thread: Value = serde_json::from_slice(&out.stdout).unwrap();
        let frame = thread["frames"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["function"] == "parked")
            .unwrap_or_else(|| panic!("{what}: no parked frame in {thread}"));
        let got: Vec<(String, String)> = frame["locals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["name"].as_str().unwrap().into(),
                    l["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{what}: {got:?}");
        for ((name, value), (want_name, want_value)) in got.iter().zip(want) {
            assert_eq!(name, want_name, "{what}: {got:?}");
            assert!(
                if want_value.ends_with(" at ") {
                    value.starts_with(want_value)
                } else {
                    value == want_value
                },
                "{what}: {name} = {value}, not {want_value}"
            );
        }
    }
}
