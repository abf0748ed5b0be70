//! Names as they were at each event: a thread renamed mid-run, a process
//! that executes another program, and the summary naming what exited.

use crate::harness::{fixture, pytap, require_kernel, script};

/// The `exe` part of the flow line that enters `func` (`exe(tid):`).
fn exe_of(flow: &str, func: &str) -> String {
    let line = flow
        .lines()
        .find(|l| l.contains(&format!("=> {func} in")))
        .unwrap_or_else(|| panic!("no entry of {func}:\n{flow}"));
    let before = line.split('(').next().unwrap();
    before.split_whitespace().last().unwrap().to_string()
}

#[test]
fn a_rename_shows_from_its_moment_on() {
    require_kernel();
    for version in ["3.9", "3.11", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let run = pytap(&["flow", "--", &py, &script("rename.py")]);
        let flow = run.ok();
        assert_eq!(exe_of(flow, "before"), format!("python{version}"), "{flow}");
        assert_eq!(exe_of(flow, "after"), "renamed-main", "{flow}");
    }
}

#[test]
fn lines_before_an_exec_keep_the_program_that_made_them() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let run = pytap(&["flow", "--", &py, &script("rename.py"), "exec"]);
    let flow = run.ok();
    assert_eq!(exe_of(flow, "before"), "python3.9", "{flow}");
    assert_eq!(exe_of(flow, "after"), "renamed-main", "{flow}");
    assert!(!flow.contains("true("), "{flow}");
    // What exited was /bin/true, and the summary says so.
    assert!(
        run.stderr.contains("pytap: true exited with status 0"),
        "{}",
        run.stderr
    );
}
