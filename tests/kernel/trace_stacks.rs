//! `pytap trace --stacks` live: the stack of each gc, import and audit
//! event is walked by the marker's own program and must be exactly the
//! program's own view of its stack at that point (`tests/py/event_stacks.py`
//! writes it: innermost first, qualified names where the version has them,
//! current lines), on every Debian fixture with markers and through an
//! embedding program; on 3.13 and 3.14 with no function probe and no
//! in-process capture.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{embed_program, fixture, pytap, pytap_env, require_kernel, scratch, script};

/// The markers whose events carry stacks, and nothing else.
const MARKERS: [&str; 10] = crate::harness::GC_IMPORT_AUDIT;

/// A stack as the test compares it: (funcname, filename, lineno), innermost first.
type Stack = Vec<(String, String, i64)>;

fn stack_of(v: &Value) -> Stack {
    v.as_array()
        .unwrap_or_else(|| panic!("not a stack: {v}"))
        .iter()
        .map(|f| {
            (
                f["funcname"].as_str().unwrap().to_string(),
                f["filename"].as_str().unwrap().to_string(),
                f["lineno"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Runs the program under `trace --stacks` (`command` after `--`); returns
/// the events, the oracle (what → stack) and pytap's stderr.
fn run(name: &str, command: &[&str]) -> (Vec<Value>, BTreeMap<String, Stack>, String) {
    let dir = scratch(name);
    let out = dir.join("events.jsonl");
    let oracle = dir.join("oracle.jsonl");
    let mut args = vec!["trace", "--format", "jsonl", "--stacks", "-o"];
    args.push(out.to_str().unwrap());
    args.extend_from_slice(&MARKERS);
    args.push("--");
    args.extend_from_slice(command);
    // The oracle's path reaches the program through pytap's environment.
    let run = pytap_env(&args, &[("PYTAP_ORACLE", &oracle)]);
    run.ok();
    let events = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON ({e}): {l}")))
        .collect();
    let oracle = std::fs::read_to_string(&oracle)
        .unwrap_or_else(|e| panic!("{name}: the program wrote no oracle ({e}): {}", run.stderr))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["what"].as_str().unwrap().to_string(),
                stack_of(&v["stack"]),
            )
        })
        .collect();
    (events, oracle, run.stderr)
}

/// Every event of the program's steps has exactly the oracle's stack.
fn check(name: &str, events: &[Value], oracle: &BTreeMap<String, Stack>) {
    let want = |what: &str| {
        oracle
            .get(what)
            .unwrap_or_else(|| panic!("{name}: no oracle for {what}: {oracle:?}"))
    };
    for e in events {
        assert!(
            e.get("stack").is_some(),
            "{name}: an event without a stack: {e}"
        );
        assert!(
            !e["cpu"].is_null(),
            "{name}: an event from the capture: {e}"
        );
    }
    let step = |what: &str| {
        events
            .iter()
            .position(|e| e["event"] == "pytap.step" && e["args"][0] == what)
            .unwrap_or_else(|| panic!("{name}: no pytap.step {what}"))
    };
    let tid = &events[step("gc")]["tid"];
    for what in ["gc", "gc done", "import", "import done"] {
        let got = stack_of(&events[step(what)]["stack"]);
        assert_eq!(&got, want(&format!("step {what}")), "{name}: step {what}");
    }
    // What fired between two steps, on the program's thread.
    let between = |from: &str, to: &str, marker: &str| -> Vec<Stack> {
        events[step(from)..step(to)]
            .iter()
            .filter(|e| e["marker"] == marker && &e["tid"] == tid)
            .filter(|e| !marker.starts_with("import") || e["module"] == "pytap_fresh_module")
            .map(|e| stack_of(&e["stack"]))
            .collect()
    };
    for marker in ["gc__start", "gc__done"] {
        let got = between("gc", "gc done", marker);
        assert!(!got.is_empty(), "{name}: no {marker} in gc.collect()");
        for stack in got {
            assert_eq!(&stack, want("gc"), "{name}: {marker}");
        }
    }
    for marker in ["import__find__load__start", "import__find__load__done"] {
        let got = between("import", "import done", marker);
        assert_eq!(
            got.len(),
            1,
            "{name}: {marker} of pytap_fresh_module: {got:?}"
        );
        assert_eq!(&got[0], want("import"), "{name}: {marker}");
    }
    let audit: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "pytap.test")
        .collect();
    assert_eq!(audit.len(), 1, "{name}: {audit:?}");
    assert_eq!(
        &stack_of(&audit[0]["stack"]),
        want("audit"),
        "{name}: audit"
    );
    // The auditor's recursion, innermost first, with the lines of each call.
    assert_eq!(
        want("audit")[..4]
            .iter()
            .filter(|f| f.0 == "auditor")
            .count(),
        4
    );
}

fn on_fixture(version: &str) {
    require_kernel();
    let f = fixture(version);
    let program = script("event_stacks.py");
    let (events, oracle, _) = run(
        &format!("trace-stacks-{version}"),
        &[f.wrapper.to_str().unwrap(), &program],
    );
    check(version, &events, &oracle);
}

#[test]
fn stacks_of_events_are_the_programs_own_on_3_9() {
    on_fixture("3.9");
}

#[test]
fn stacks_of_events_are_the_programs_own_on_3_11() {
    on_fixture("3.11");
}

#[test]
fn stacks_of_events_are_the_programs_own_on_3_15() {
    on_fixture("3.15");
}

/// 3.13 and 3.14 have no function markers: the stacks need neither
/// function probes nor the in-process capture.
#[test]
fn stacks_of_events_need_no_function_probe_on_3_13_and_3_14() {
    for version in ["3.13", "3.14"] {
        on_fixture(version);
        let dump = scratch(&format!("trace-stacks-dump-{version}")).join("dump.txt");
        let binary = fixture(version).binary.to_str().unwrap().to_string();
        let mut args = vec!["trace", "--format", "jsonl", "--stacks", "--dump-bpf"];
        args.extend_from_slice(&MARKERS);
        args.extend_from_slice(&["-o", dump.to_str().unwrap(), "--", &binary, "x.py"]);
        pytap(&args).ok();
        let dump = std::fs::read_to_string(&dump).unwrap();
        let sites: Vec<&str> = dump
            .lines()
            .filter(|l| l.starts_with("#   cookie"))
            .collect();
        // Sites of the five markers (a marker may have several), and no
        // function marker's.
        let markers: std::collections::BTreeSet<&str> = sites
            .iter()
            .filter_map(|s| s.split_whitespace().nth(3))
            .collect();
        let want: std::collections::BTreeSet<&str> =
            MARKERS[1..].iter().step_by(2).copied().collect();
        assert_eq!(markers, want, "{version}: {sites:?}");
        assert!(dump.contains("map[procs]") && dump.contains("map[samples]"));
    }
}

/// Markers in libpython3.11.so, mapped after the program starts: the
/// process is found when its first events arrive.
#[test]
fn stacks_of_events_through_an_embedding_program() {
    require_kernel();
    let code = format!(
        "import runpy; runpy.run_path({:?}, run_name='__main__')",
        script("event_stacks.py")
    );
    let (events, oracle, stderr) = run(
        "trace-stacks-embed",
        &[embed_program().to_str().unwrap(), &code],
    );
    check("embed", &events, &oracle);
    // Its first events came before pytap could find the interpreter:
    // said, never wrong.
    let first = &events[0]["stack"][0]["funcname"];
    assert!(
        first.as_str().is_some_and(|f| !f.starts_with("<unknown"))
            || stderr.contains("have no stack"),
        "{first}: {stderr}"
    );
}
