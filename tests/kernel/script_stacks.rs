//! Python stacks in scripts: D's `jstack()` and SystemTap's
//! `sprint_pybacktrace()`/`print_pybacktrace()` at a marker, as
//! aggregation keys and printed values, against the program's own
//! `traceback.extract_stack()` at the event.

use crate::harness::{
    d_stack_frames, fixture, pytap, require_kernel, scratch, script, stack_oracle,
};

const AT_EVENT: &str = "python$target:::audit /copyinstr(arg0) == \"pytap.jstack\"/";

#[test]
fn jstack_is_the_programs_own_stack_as_a_key_and_traced() {
    require_kernel();
    let program = script("jstack.py");
    for version in ["3.13", "3.14", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let oracle = scratch("jstack").join(format!("oracle-{version}.txt"));
        let oracle_path = oracle.display().to_string();
        let run = pytap(&[
            "dtrace",
            "-q",
            "-n",
            &format!("{AT_EVENT} {{ @[jstack()] = count(); }}"),
            "-c",
            &format!("{py} {program} {oracle_path}"),
        ]);
        let out = run.ok().to_string();
        let want = stack_oracle(&oracle, version);
        // dtrace's newline at the end, then the entry: a newline, the
        // frames, the count.
        let mut printed = String::from("\n\n");
        for f in &want {
            printed.push_str(&format!("{}{f}\n", " ".repeat(14)));
        }
        printed.push_str(&format!("{:>17}\n", 3));
        assert_eq!(out, printed, "{version}: @[jstack()]");

        // trace(), and printf of a stack cut to one frame.
        let run = pytap(&[
            "dtrace",
            "-q",
            "-n",
            &format!("{AT_EVENT} {{ trace(jstack()); printf(\"[%s]\\n\", jstack(1)); }}"),
            "-c",
            &format!("{py} {program} {oracle_path}"),
        ]);
        let out = run.ok();
        let frames = d_stack_frames(out);
        let mut once = want.clone();
        once.push(want[0].clone());
        assert_eq!(
            frames,
            [once.clone(), once.clone(), once].concat(),
            "{version}: {out}"
        );
    }
}

#[test]
fn pybacktrace_in_systemtap_prints_and_keys_the_same_stack() {
    require_kernel();
    let program = script("jstack.py");
    let py = fixture("3.14").binary.display().to_string();
    let oracle = scratch("pybacktrace").join("oracle.txt");
    let oracle_path = oracle.display().to_string();
    let text = r#"global seen
probe process.mark("audit") {
  if (user_string($arg1) == "pytap.jstack") { print_pybacktrace(); seen[sprint_pybacktrace()] <<< 1 }
}
probe end { foreach (s in seen) printf("%d times:\n%s\n", @count(seen[s]), s) }"#;
    let run = pytap(&[
        "stap",
        "-e",
        text,
        "-c",
        &format!("{py} {program} {oracle_path}"),
    ]);
    let out = run.ok();
    let want = std::fs::read_to_string(&oracle).unwrap();
    assert_eq!(out, format!("{want}{want}{want}3 times:\n{want}"));
}

/// Three `time.sleep()` calls, each reaching libc's `clock_nanosleep`.
const NAPS: &str = "import time\nfor _ in range(3): time.sleep(0.01)";

/// D's `ustack()` at a function's entry: the native call chain, innermost
/// first, the function's caller found through its return address (the
/// frame pointer is still the caller's there). Debian's 3.15 keeps frame
/// pointers: the chain runs up through the eval loop to `Py_BytesMain`.
/// pyenv's 3.12 has symbols for its static functions: the caller is
/// `time_sleep` (where `pysleep` is inlined).
#[test]
fn ustack_at_a_function_entry_is_the_native_call_chain() {
    require_kernel();
    let program = "pid$target::clock_nanosleep:entry { @[ustack()] = count(); }";
    let py = fixture("3.15").wrapper.display().to_string();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        program,
        "-c",
        &format!("{py} -c '{NAPS}'"),
    ]);
    let out = run.ok();
    let frames = d_stack_frames(out);
    let count: u64 = out
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(count, 3, "{out}");
    assert_eq!(frames[0], "libc.so.6`clock_nanosleep", "{out}");
    let at = |name: &str| {
        frames
            .iter()
            .position(|f| f == &format!("python3.15`{name}"))
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
    };
    assert!(at("PyEval_EvalCode") < at("Py_RunMain"), "{out}");
    assert!(at("Py_RunMain") < at("Py_BytesMain"), "{out}");

    let py = crate::harness::fixtures::pyenv_python("3.12")
        .display()
        .to_string();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        program,
        "-c",
        &format!("{py} -c '{NAPS}'"),
    ]);
    let out = run.ok();
    let frames = d_stack_frames(out);
    assert_eq!(
        frames[..2],
        [
            "libc.so.6`clock_nanosleep",
            "libpython3.12.so.1.0`time_sleep"
        ],
        "{out}"
    );
}

/// SystemTap's `print_ubacktrace()`: one `function [file]` a line.
#[test]
fn print_ubacktrace_prints_the_native_stack_in_systemtaps_words() {
    require_kernel();
    let py = crate::harness::fixtures::pyenv_python("3.12")
        .display()
        .to_string();
    let run = pytap(&[
        "stap",
        "-e",
        r#"probe process.function("clock_nanosleep") { print_ubacktrace(); printf("--\n") }"#,
        "-c",
        &format!("{py} -c '{NAPS}'"),
    ]);
    let out = run.ok();
    let stacks: Vec<&str> = out.split("--\n").filter(|s| !s.is_empty()).collect();
    assert_eq!(stacks.len(), 3, "{out}");
    for s in stacks {
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[..2],
            [
                "clock_nanosleep [libc.so.6]",
                "time_sleep [libpython3.12.so.1.0]"
            ],
            "{out}"
        );
    }
}

/// A launched program's first Python code already has its stack: the
/// interpreter's start tells the walk in the kernel, though a shared
/// libpython is mapped only after the exec (pytap's own look at the
/// process comes later).
#[test]
fn the_first_python_code_of_a_launched_program_has_its_stack() {
    require_kernel();
    // At `time.sleep`'s C function (pyenv's builds keep their symbols;
    // Debian's static ones are probed at libc's clock_nanosleep, which
    // their sleep calls).
    let mut pythons: Vec<(String, String, &str)> = crate::harness::pyenv_versions()
        .iter()
        .map(|v| {
            (
                format!("pyenv {v}"),
                crate::harness::pyenv_python(v).display().to_string(),
                "time_sleep",
            )
        })
        .collect();
    for version in ["3.13", "3.15"] {
        pythons.push((
            format!("Debian {version}"),
            fixture(version).binary.display().to_string(),
            "clock_nanosleep",
        ));
    }
    for (label, py, function) in pythons {
        let run = pytap(&[
            "dtrace",
            "-q",
            "-n",
            &format!("pid$target::{function}:entry {{ trace(jstack()); exit(0); }}"),
            "-c",
            &format!("{py} -S -c 'import time; time.sleep(0.2)'"),
        ]);
        assert_eq!(
            run.ok(),
            format!("\n{}<string>:1 (<module>)\n\n", " ".repeat(14)),
            "{label}"
        );
    }
}
