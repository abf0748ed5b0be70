//! Profile probes in scripts: D's `profile-N` and SystemTap's
//! `timer.profile` / `timer.hz(N)` fire on every CPU's clock, in whatever
//! runs there; with `jstack()` (`sprint_pybacktrace()`) they are a
//! sampling profiler written as a script. Held to the known stacks of
//! `tests/py/sampled.py` (a recursion of known depth spinning on one line)
//! on every interpreter here, with markers and without.

use std::path::Path;

use super::profile::{line_of, start};
use crate::harness::fixtures::{self, require_kernel};
use crate::harness::{pytap, root};

const DEPTH: usize = 30;

/// The spinning recursion's stack as D prints a frame (`file:line
/// (function)`), innermost first.
fn depth_frames() -> Vec<String> {
    let file = root().join("tests/py/sampled.py").display().to_string();
    let mut frames = vec![format!(
        "{file}:{} (recurse)",
        line_of("while True: x += 1")
    )];
    for _ in 0..DEPTH {
        frames.push(format!(
            "{file}:{} (recurse)",
            line_of("    recurse(n - 1)")
        ));
    }
    frames.push(format!(
        "{file}:{} (main)",
        line_of("recurse(int(sys.argv[2]))")
    ));
    frames.push(format!("{file}:{} (<module>)", line_of("    main()")));
    frames
}

/// D's printed aggregation keyed by a stack: each entry's frames
/// (innermost first) and count.
fn d_stack_counts(out: &str) -> Vec<(Vec<String>, u64)> {
    out.split("\n\n")
        .filter_map(|block| {
            let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
            let (count, frames) = lines.split_last()?;
            let count = count.trim().parse().ok()?;
            Some((frames.iter().map(|f| f.trim().to_string()).collect(), count))
        })
        .collect()
}

/// `profile-997 /pid == $target/ { @[jstack()] = count(); }` for one
/// second on a running `sampled.py depth 30`: at least 99 % of the
/// target's samples are the exact stack and line.
#[track_caller]
fn assert_jstack_profile(python: &Path, what: &str) {
    let mut t = start(python, &["depth", &DEPTH.to_string()]);
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        "profile-997 /pid == $target/ { @[jstack()] = count(); } tick-1sec { exit(0); }",
        "-p",
        &t.guard.pid().to_string(),
    ]);
    t.guard.kill();
    let out = run.ok();
    let counts = d_stack_counts(out);
    let want = depth_frames();
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let exact: u64 = counts
        .iter()
        .filter(|(f, _)| *f == want)
        .map(|(_, n)| n)
        .sum();
    assert!(
        total >= 200,
        "{what}: only {total} samples of the target in 1 s at 997 Hz:\n{out}"
    );
    assert!(
        exact * 100 >= total * 99,
        "{what}: {exact} of {total} samples have the exact stack:\n{out}"
    );
}

#[test]
fn d_profile_jstack_is_exact_on_every_debian_fixture() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        assert_jstack_profile(&fixtures::fixture(version).wrapper, version);
    }
}

#[test]
fn d_profile_jstack_is_exact_on_builds_without_markers() {
    require_kernel();
    for version in fixtures::pyenv_versions() {
        assert_jstack_profile(
            &fixtures::pyenv_python(version),
            &format!("pyenv-{version}"),
        );
    }
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let twin = fixtures::fixture_without_markers(version);
        assert_jstack_profile(&twin.wrapper, &format!("{version}-nomarkers"));
    }
}

/// SystemTap's `timer.profile` (250 Hz on each CPU) keys the exact
/// backtrace; a `timer.hz(N)` that reads `pid()` samples every CPU at N Hz
/// (the spinning target gets about N a second); one that reads nothing of
/// the thread stays one timer in pytap (N a second in all).
#[test]
fn systemtap_timer_profile_and_timer_hz_sample_the_running_thread() {
    require_kernel();
    let python = fixtures::fixture("3.14").wrapper.clone();
    let mut t = start(&python, &["depth", &DEPTH.to_string()]);
    let text = r#"global stacks, total, hz, ticks
probe timer.profile { if (pid() == target()) { stacks[sprint_pybacktrace()] <<< 1; total++ } }
probe timer.hz(200) { if (pid() == target()) hz++ }
probe timer.hz(20) { ticks++ }
probe timer.s(2) { exit() }
probe end {
  foreach (s in stacks- limit 1) printf("%d\n%s\n", @count(stacks[s]), s)
  printf("total %d hz %d ticks %d\n", total, hz, ticks)
}"#;
    let run = pytap(&["stap", "-e", text, "-x", &t.guard.pid().to_string()]);
    t.guard.kill();
    let out = run.ok();
    let mut lines = out.lines();
    let top: u64 = lines.next().unwrap().parse().unwrap();
    let frames: Vec<&str> = lines.by_ref().take(DEPTH + 3).collect();
    assert_eq!(frames, depth_frames(), "{out}");
    let last = out.lines().last().unwrap();
    let numbers: Vec<u64> = last
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [total, hz, ticks] = numbers[..] else {
        panic!("{out}")
    };
    assert!(top * 100 >= total * 99, "{top} of {total}: {out}");
    // Two seconds: 500 at 250 Hz, 400 at 200 Hz for a thread that has a
    // CPU throughout (a loaded machine takes some away, never adds; the
    // clocks start with the session, a little before the timer does).
    assert!((250..=560).contains(&total), "timer.profile: {out}");
    assert!((200..=450).contains(&hz), "timer.hz(200) with pid(): {out}");
    assert!((36..=42).contains(&ticks), "timer.hz(20), one timer: {out}");
}

/// dtrace prints a line per firing only for a clause that records data:
/// not for one that only aggregates.
#[test]
fn d_profile_aggregation_clauses_print_no_line_per_firing() {
    require_kernel();
    let python = fixtures::fixture("3.13").wrapper.clone();
    let mut t = start(&python, &["depth", "3"]);
    let run = pytap(&[
        "dtrace",
        "-n",
        "profile-199 /pid == $target/ { @n = count(); } tick-1sec { exit(0); }",
        "-p",
        &t.guard.pid().to_string(),
    ]);
    t.guard.kill();
    let out = run.ok();
    assert!(!out.contains(":profile"), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "the header, tick-1sec's firing, @n:\n{out}");
    assert!(lines[1].trim_end().ends_with(":tick"), "{out}");
    // About a second at 199 Hz: the clocks start with the session, a
    // little before tick-1sec's second does.
    let n: u64 = lines[2].trim().parse().unwrap();
    assert!((100..=240).contains(&n), "{out}");
}
