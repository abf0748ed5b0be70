//! Function probes in scripts: D's `pid` provider and SystemTap's
//! `.function("NAME")`, uprobes on a function of a file the target runs,
//! found by its symbol. The issue's own test: `jstack()` at libc's
//! `clock_nanosleep`, entered by a thread that released the GIL in
//! `time.sleep()`, is exactly that call's Python stack (the program's
//! own `traceback.extract_stack()`).

use crate::harness::{
    d_stack_frames, fixture, pytap, require_kernel, scratch, script, stack_oracle,
};

#[test]
fn jstack_at_clock_nanosleep_is_the_sleeping_calls_stack() {
    require_kernel();
    let program = script("nap_stack.py");
    for version in ["3.13", "3.14", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let path = scratch("nap").join(format!("oracle-{version}.txt"));
        let run = pytap(&[
            "dtrace",
            "-q",
            "-n",
            // The sleep at the end has no Python caller of its own but
            // `<module>`: only the first firing is the one the oracle has.
            "pid$target::clock_nanosleep:entry /++n == 1/ { trace(jstack()); }",
            "-c",
            &format!("{py} {program} {}", path.display()),
        ]);
        let out = run.ok();
        assert_eq!(
            d_stack_frames(out),
            stack_oracle(&path, version),
            "{version}: {out}"
        );
    }
}

#[test]
fn function_probes_in_systemtap_key_and_print_the_stack_and_see_the_return() {
    require_kernel();
    let program = script("nap_stack.py");
    let py = fixture("3.14").binary.display().to_string();
    let path = scratch("nap-stap").join("oracle.txt");
    let text = r#"global seen, n, rets
probe process.library("libc.so.6").function("clock_nanosleep") {
  if (++n == 1) { print_pybacktrace(); seen[sprint_pybacktrace()] <<< 1 }
}
probe process.function("clock_nanosleep").return { rets[$return] <<< 1 }
probe end {
  foreach (s in seen) printf("%d times:\n%s\n", @count(seen[s]), s)
  foreach (r in rets) printf("returned %d\n", r)
}"#;
    let run = pytap(&[
        "stap",
        "-e",
        text,
        "-c",
        &format!("{py} {program} {}", path.display()),
    ]);
    let out = run.ok();
    let want = stack_oracle(&path, "3.14").join("\n") + "\n";
    // clock_nanosleep returns 0 (slept the whole time) for both sleeps.
    assert_eq!(out, format!("{want}1 times:\n{want}returned 0\n"));
}

#[test]
fn a_function_no_file_has_is_one_line_naming_the_files_searched() {
    require_kernel();
    let py = fixture("3.14").binary.display().to_string();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        "pid$target:libc.so.6:pytap_no_such_function:entry { trace(1); }",
        "-c",
        &format!("{py} -c pass"),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let err = run.one_line_error();
    assert!(
        err.contains("pid$target:libc.so.6:pytap_no_such_function:entry: no function symbol matches `pytap_no_such_function`")
            && err.contains("libc.so.6"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Without a target there are no files to look in.
    let run = pytap(&[
        "dtrace",
        "-n",
        "pid$target::clock_nanosleep:entry { trace(1); }",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let err = run.one_line_error();
    assert!(err.contains("-c CMD or -p PID"), "{err}");
}

/// `dtrace -l` lists the pid provider's probes a description names, in the
/// files the process runs, with markers or without.
#[test]
fn dtrace_l_lists_a_processes_pid_probes() {
    require_kernel();
    let py = crate::harness::fixtures::pyenv_python("3.12");
    let mut guard =
        crate::harness::guard::ChildGuard::spawn(std::process::Command::new(&py).args([
            "-c",
            "import time; print('ready', flush=True); time.sleep(30)",
        ]));
    let mut line = String::new();
    std::io::BufRead::read_line(guard.stdout.as_mut().unwrap(), &mut line).unwrap();
    let pid = guard.pid().to_string();
    let run = pytap(&[
        "dtrace",
        "-l",
        "-n",
        "pid$target:libc.so.6:clock_nanosleep:",
        "-p",
        &pid,
    ]);
    let rows: Vec<Vec<String>> = run
        .ok()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let want = |id: &str, name: &str| {
        [
            id,
            &format!("pid{pid}"),
            "libc.so.6",
            "clock_nanosleep",
            name,
        ]
        .map(str::to_string)
    };
    assert_eq!(
        rows[1..],
        [want("4", "entry"), want("5", "return")],
        "{rows:?}"
    );
    let run = pytap(&["dtrace", "-l", "-n", "pid$target:::entry", "-p", &pid]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.one_line_error().contains("name the function"),
        "{}",
        run.stderr
    );
    guard.kill();
}
