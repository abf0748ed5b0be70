//! `pytap profile` against targets whose stacks are known
//! (`tests/py/sampled.py`): exact stacks and lines at a known depth on
//! every interpreter here (with markers or without), a 3:1 CPU ratio, a
//! sleeping thread in `cpu` and `wall` modes, the GIL holder in `gil`
//! mode, and the formats read back by their own readers.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::harness::fixtures::{self, require_kernel, scratch};
use crate::harness::guard::ChildGuard;
use crate::harness::{pytap_bin, root};

/// A running `sampled.py MODE ARG` and the thread ids it printed.
pub(super) struct Target {
    pub(super) guard: ChildGuard,
    pub(super) tids: BTreeMap<String, u32>,
}

pub(super) fn start(python: &Path, args: &[&str]) -> Target {
    let mut guard = ChildGuard::spawn(
        Command::new(python)
            .arg(root().join("tests/py/sampled.py"))
            .args(args),
    );
    let mut tids = BTreeMap::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(guard.stdout.as_mut().unwrap(), &mut line).unwrap();
        assert!(n > 0, "sampled.py {args:?} ended before it was ready");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["ready"] => break,
            ["tid", name, id] => {
                tids.insert(name.to_string(), id.parse().unwrap());
            }
            _ => panic!("sampled.py said {line:?}"),
        }
    }
    Target { guard, tids }
}

/// Folded stacks of `pytap profile` on `pid` (stack → samples).
fn profile(pid: u32, extra: &[&str], name: &str) -> BTreeMap<String, u64> {
    let out_file = scratch(name).join("profile.folded");
    let out = Command::new(pytap_bin())
        .args([
            "profile",
            "-p",
            &pid.to_string(),
            "--format",
            "folded",
            "-o",
        ])
        .arg(&out_file)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pytap profile {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    text.lines()
        .map(|l| {
            let (stack, n) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), n.parse().unwrap())
        })
        .collect()
}

pub(super) fn line_of(needle: &str) -> usize {
    let text = std::fs::read_to_string(root().join("tests/py/sampled.py")).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in sampled.py"))
        + 1
}

/// The stack of `recurse(depth)` spinning, outermost first.
pub(super) fn expected_depth_stack(depth: usize) -> String {
    let file = root().join("tests/py/sampled.py").display().to_string();
    let mut frames = vec![
        format!("<module> ({file}:{})", line_of("    main()")),
        format!("main ({file}:{})", line_of("recurse(int(sys.argv[2]))")),
    ];
    for _ in 0..depth {
        frames.push(format!(
            "recurse ({file}:{})",
            line_of("    recurse(n - 1)")
        ));
    }
    frames.push(format!(
        "recurse ({file}:{})",
        line_of("while True: x += 1")
    ));
    frames.join(";")
}

/// At least 99 % of the samples have exactly the known stack and line.
#[track_caller]
fn assert_depth(python: &Path, what: &str) {
    const DEPTH: usize = 30;
    let mut t = start(python, &["depth", &DEPTH.to_string()]);
    let stacks = profile(
        t.guard.pid(),
        &["--rate", "999", "-d", "1"],
        &format!("profile-depth-{what}"),
    );
    t.guard.kill();
    let want = expected_depth_stack(DEPTH);
    let total: u64 = stacks.values().sum();
    let exact: u64 = stacks
        .iter()
        .filter(|(s, _)| s.split_once(';').is_some_and(|(_, frames)| frames == want))
        .map(|(_, n)| n)
        .sum();
    assert!(
        total >= 200,
        "{what}: only {total} samples in 1 s at 999 Hz: {stacks:?}"
    );
    assert!(
        exact * 100 >= total * 99,
        "{what}: {exact} of {total} samples have the exact stack {want}\n{stacks:#?}"
    );
}

#[test]
fn profile_gives_exact_stacks_and_lines_on_every_debian_fixture() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        assert_depth(&fixtures::fixture(version).wrapper, version);
    }
}

#[test]
fn profile_gives_exact_stacks_and_lines_on_every_pyenv_build() {
    require_kernel();
    for version in fixtures::pyenv_versions() {
        assert_depth(
            &fixtures::pyenv_python(version),
            &format!("pyenv-{version}"),
        );
    }
}

#[test]
fn profile_samples_builds_whose_markers_were_removed() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let twin = fixtures::fixture_without_markers(version);
        assert_depth(&twin.wrapper, &format!("{version}-nomarkers"));
    }
}

/// Samples per function at the leaf.
fn leaf_counts(stacks: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (stack, n) in stacks {
        let leaf = stack.rsplit(';').next().unwrap();
        let function = leaf.split(" (").next().unwrap().to_string();
        *out.entry(function).or_default() += n;
    }
    out
}

/// Samples per function anywhere on the stack, once per sample.
pub(super) fn on_stack(stacks: &BTreeMap<String, u64>, function: &str) -> u64 {
    stacks
        .iter()
        .filter(|(s, _)| s.split(';').any(|f| f.split(" (").next() == Some(function)))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn profile_measures_a_known_cpu_ratio() {
    require_kernel();
    for version in ["3.11", "3.15"] {
        let mut t = start(&fixtures::fixture(version).wrapper, &["ratio"]);
        let stacks = profile(
            t.guard.pid(),
            &["--rate", "999", "-d", "3"],
            "profile-ratio",
        );
        t.guard.kill();
        let (three, one) = (on_stack(&stacks, "three"), on_stack(&stacks, "one"));
        let share = three as f64 * 100.0 / (three + one) as f64;
        assert!(three + one >= 1000, "{version}: {three} + {one} samples");
        assert!(
            (share - 75.0).abs() <= 2.0,
            "{version}: three() has {share:.1} % of the samples, not 75 ± 2 ({three} vs {one})"
        );
    }
}

#[test]
fn a_sleeping_thread_has_no_cpu_samples_and_its_sleep_line_in_wall_mode() {
    require_kernel();
    let file = root().join("tests/py/sampled.py").display().to_string();
    let sleep_line = format!("nap ({file}:{})", line_of("time.sleep(3600)"));
    for version in ["3.9", "3.13"] {
        let mut t = start(&fixtures::fixture(version).wrapper, &["sleeper"]);
        let pid = t.guard.pid();
        let sleeper = t.tids["sleeper"];
        let cpu = profile(pid, &["--rate", "999", "-d", "1"], "profile-sleeper-cpu");
        let wall = profile(
            pid,
            &["--rate", "99", "-d", "1", "--mode", "wall"],
            "profile-sleeper-wall",
        );
        t.guard.kill();
        let tid_mark = format!("tid {sleeper})");
        assert!(
            cpu.keys()
                .all(|s| !s.split(';').next().unwrap().contains(&tid_mark)),
            "{version}: the sleeping thread has cpu samples: {cpu:#?}"
        );
        assert!(leaf_counts(&cpu)["py_spin"] > 200, "{version}: {cpu:#?}");
        let sleeping: u64 = wall
            .iter()
            .filter(|(s, _)| s.split(';').next().unwrap().contains(&tid_mark))
            .filter(|(s, _)| s.ends_with(&sleep_line))
            .map(|(_, n)| n)
            .sum();
        assert!(
            sleeping >= 50,
            "{version}: the sleeping thread's sleep line {sleep_line} in wall mode: {wall:#?}"
        );
    }
}

#[test]
fn gil_mode_samples_only_the_thread_holding_the_gil() {
    require_kernel();
    for version in ["3.9", "3.11", "3.12", "3.13", "3.15"] {
        let python = if version == "3.12" {
            fixtures::pyenv_python(version)
        } else {
            fixtures::fixture(version).wrapper.clone()
        };
        let mut t = start(&python, &["gil"]);
        let pid = t.guard.pid();
        let cpu = profile(pid, &["--rate", "999", "-d", "1"], "profile-gil-cpu");
        let gil = profile(
            pid,
            &["--rate", "999", "-d", "1", "--mode", "gil"],
            "profile-gil-gil",
        );
        t.guard.kill();
        let leaves =
            |s: &BTreeMap<String, u64>, f: &str| leaf_counts(s).get(f).copied().unwrap_or(0);
        assert!(
            leaves(&cpu, "py_spin") > 100 && leaves(&cpu, "c_spin") > 100,
            "{version}: {cpu:#?}"
        );
        let (py, c) = (leaves(&gil, "py_spin"), leaves(&gil, "c_spin"));
        assert!(py > 100, "{version}: {gil:#?}");
        // The checksumming thread takes the GIL back for a moment between two
        // 64 MiB checksums: at most a sample or two of those.
        assert!(
            c * 100 <= (py + c) * 2,
            "{version}: c_spin has {c} of {} gil samples",
            py + c
        );
    }
}

#[test]
fn profile_formats_are_read_by_their_readers() {
    require_kernel();
    let mut t = start(&fixtures::fixture("3.15").wrapper, &["depth", "5"]);
    let dir = scratch("profile-formats");
    for (format, file) in [
        ("pprof", "p.pb.gz"),
        ("svg", "p.svg"),
        ("speedscope", "p.json"),
    ] {
        let out = Command::new(pytap_bin())
            .args([
                "profile",
                "-p",
                &t.guard.pid().to_string(),
                "-d",
                "1",
                "--rate",
                "499",
            ])
            .args(["--format", format, "-o"])
            .arg(dir.join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    t.guard.kill();
    let go = Command::new("go")
        .args(["tool", "pprof", "-traces"])
        .arg(dir.join("p.pb.gz"))
        .output()
        .expect("prerequisite missing: go (apt-get install golang-go)");
    let traces = String::from_utf8_lossy(&go.stdout);
    assert!(
        go.status.success(),
        "go tool pprof: {}",
        String::from_utf8_lossy(&go.stderr)
    );
    assert!(traces.contains("recurse"), "{traces}");
    let svg = std::fs::read_to_string(dir.join("p.svg")).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("recurse"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("p.json")).unwrap()).unwrap();
    assert_eq!(
        json["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
}

#[test]
fn profile_of_a_command_follows_it_and_reports_its_end() {
    require_kernel();
    let python = fixtures::fixture("3.13").wrapper.clone();
    let out = Command::new(pytap_bin())
        .args(["profile", "--rate", "499", "--format", "folded", "--"])
        .arg(&python)
        .args(["-c", "import time\ndef work():\n    end = time.time() + 0.7\n    while time.time() < end: pass\nwork()"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(";work (<string>:4)"), "{text}");
    assert!(err.contains("the program exited with status 0"), "{err}");
}

#[test]
fn code_freed_and_made_again_never_gives_a_frame_a_stale_name() {
    require_kernel();
    const FUNCTIONS: usize = 300;
    for version in ["3.11", "3.15"] {
        let mut t = start(
            &fixtures::fixture(version).wrapper,
            &["fresh", &FUNCTIONS.to_string()],
        );
        let pid = t.guard.pid();
        // Long enough for the whole program on a slow machine (it compiles
        // and runs 300 functions, then waits).
        let stacks = profile(pid, &["--rate", "999", "-d", "4"], "profile-fresh");
        let mut line = String::new();
        std::io::BufRead::read_line(t.guard.stdout.as_mut().unwrap(), &mut line).unwrap();
        t.guard.kill();
        let distinct: usize = line.trim().strip_prefix("ids ").unwrap().parse().unwrap();
        assert!(
            distinct < FUNCTIONS,
            "{version}: every code object got its own address ({distinct}): no reuse to test"
        );
        // Each f_I ran once for 5 ms: about 5 samples at 999 Hz. A frame
        // named after a freed code object that its memory's new code
        // replaced would give one name the samples of two.
        let mut per_function: BTreeMap<String, u64> = BTreeMap::new();
        for (stack, n) in &stacks {
            for frame in stack.split(';') {
                if let Some(rest) = frame.strip_prefix("f_") {
                    let (index, place) = rest.split_once(" (").unwrap();
                    assert!(
                        place.starts_with(&format!("gen_{index}.py:")),
                        "{version}: {frame} is not where f_{index} is"
                    );
                    *per_function.entry(index.to_string()).or_default() += n;
                }
            }
        }
        // A loaded machine gives the target less CPU, and some functions no
        // sample at all; enough of them are seen all the same.
        assert!(
            per_function.len() >= FUNCTIONS / 5,
            "{version}: {per_function:?}"
        );
        let most = per_function.values().max().copied().unwrap_or(0);
        assert!(
            most <= 9,
            "{version}: one function has {most} samples: {per_function:?}"
        );
    }
}

/// `pytap profile --native` of `sampled.py through_c`: its folded stacks
/// and what pytap said.
fn native_profile(python: &Path, name: &str) -> (BTreeMap<String, u64>, String) {
    let t = start(python, &["through_c"]);
    let out_file = scratch(name).join("profile.folded");
    let out = Command::new(pytap_bin())
        .args(["profile", "--native", "--rate", "499", "-d", "1"])
        .args(["-p", &t.guard.pid().to_string(), "--format", "folded", "-o"])
        .arg(&out_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    let stacks = text
        .lines()
        .map(|l| {
            let (stack, n) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), n.parse().unwrap())
        })
        .collect();
    (stacks, stderr)
}

/// A folded frame is Python's when it ends in `:LINE)`.
fn is_python_frame(frame: &str) -> bool {
    frame
        .strip_suffix(')')
        .and_then(|f| f.rsplit_once(':'))
        .is_some_and(|(_, line)| line.parse::<u32>().is_ok())
}

#[test]
fn native_frames_go_where_each_eval_loop_call_runs_on_a_build_with_frame_pointers() {
    require_kernel();
    // Debian's 3.15 keeps frame pointers; its eval loop has no symbol over
    // most of its code (stripped, split in parts): each call is placed by
    // where its entry frame is on the C stack.
    let (stacks, stderr) = native_profile(&fixtures::fixture("3.15").binary, "native-315");
    let file = root().join("tests/py/sampled.py").display().to_string();
    let key = format!("key ({file}:{})", line_of("# noqa: E701 KEY_LINE"));
    let through = format!("through_c ({file}:{})", line_of("sorted([2, 1], key=key)"));
    let main = format!("main ({file}:{})", line_of("        through_c()"));
    let total: u64 = stacks.values().sum();
    assert!(total >= 200, "{total} samples: {stderr}");
    let mut exact = 0;
    for (stack, n) in &stacks {
        // Outermost first, after the thread's own frame.
        let frames: Vec<&str> = stack.split(';').skip(1).collect();
        let at = |f: &str| frames.iter().position(|g| *g == f);
        let (Some(m), Some(t), Some(k)) = (at(&main), at(&through), at(&key)) else {
            continue;
        };
        let module = frames.iter().position(|f| f.starts_with("<module> ("));
        // Python calls Python within one eval loop call: nothing between;
        // the sort (C) between through_c's call and key's; the interpreter's
        // start outside <module>; nothing of Python past key but what key's
        // eval loop called.
        let native = |range: std::ops::Range<usize>| {
            frames[range].iter().filter(|f| !is_python_frame(f)).count()
        };
        if module == Some(m - 1)
            && t == m + 1
            && k > t + 1
            && native(t + 1..k) == k - t - 1
            && frames[t + 1..k]
                .iter()
                .any(|f| f.starts_with("_PyFunction_Vectorcall ("))
            && frames[..m - 1]
                .iter()
                .any(|f| f.starts_with("Py_RunMain ("))
            && native(0..m - 1) == m - 1
            && native(k + 1..frames.len()) == frames.len() - k - 1
        {
            exact += n;
        }
    }
    assert!(
        exact * 100 >= total * 95,
        "{exact} of {total} samples mixed as they run:\n{stacks:#?}\n{stderr}"
    );
    assert!(!stderr.contains("frame pointers"), "{stderr}");
}

#[test]
fn native_frames_of_a_build_without_frame_pointers_are_refused_with_one_line() {
    require_kernel();
    let (stacks, stderr) = native_profile(&fixtures::fixture("3.13").binary, "native-313");
    assert_eq!(
        stderr.matches("built without frame pointers").count(),
        1,
        "{stderr}"
    );
    assert!(!stacks.is_empty(), "{stderr}");
    for stack in stacks.keys() {
        assert!(
            stack.split(';').skip(1).all(is_python_frame),
            "a native frame in {stack}"
        );
    }
}
