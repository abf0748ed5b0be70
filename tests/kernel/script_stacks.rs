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
