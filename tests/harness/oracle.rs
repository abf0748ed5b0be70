//! What the test scripts do, by their own account (a `sys.setprofile`
//! oracle) or as the tests know them: the sequences and counts pytap's
//! output is held to.

use std::collections::BTreeMap;

use super::{scratch, script};

/// What `tests/py/SCRIPT --oracle FILE` writes under `sys.setprofile`
/// (`E|R name line depth`, and for threaded.py the thread first), one
/// entry per line.
pub fn oracle_lines(python: &str, script_name: &str) -> Vec<String> {
    let out = scratch(&format!(
        "oracle-{script_name}-{}",
        python.replace('/', "_")
    ))
    .join("oracle.txt");
    let status = std::process::Command::new(python)
        .arg(script(script_name))
        .arg("--oracle")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "{python} {script_name} --oracle");
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What `tests/py/hierarchy.py --oracle` says `main()` does under
/// `sys.setprofile`: `E|R name line depth`.
pub fn hierarchy(python: &str) -> Vec<String> {
    oracle_lines(python, "hierarchy.py")
}

/// What `tests/py/call_stack.py --oracle` says `start()` does.
pub fn call_stack(python: &str) -> Vec<String> {
    oracle_lines(python, "call_stack.py")
}

/// What `tests/py/threaded.py --oracle` says each thread does: one
/// `E|R name line depth` sequence per thread, sorted.
pub fn threaded(python: &str) -> Vec<Vec<String>> {
    let mut threads: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in oracle_lines(python, "threaded.py") {
        let (thread, event) = line.split_once(' ').unwrap();
        threads
            .entry(thread.to_string())
            .or_default()
            .push(event.to_string());
    }
    let mut all: Vec<Vec<String>> = threads.into_values().collect();
    all.sort();
    all
}

fn seq(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// What calls.py's main thread does, shared by every version that fires
/// function markers (generators, listcomps and module line differ).
pub fn expected_main(
    module_line: i32,
    class_line: i32,
    generator: &str,
    listcomp: bool,
) -> Vec<String> {
    let leafs = "E:middle:11 E:leaf:7 R:leaf:8 R:middle:12 ".repeat(3);
    let inits = "E:__init__:39 R:__init__:40 ".repeat(3);
    let inits = if listcomp {
        format!("E:<listcomp>:55 {inits}R:<listcomp>:55")
    } else {
        inits
    };
    let keys = "E:keyf:43 R:keyf:44 ".repeat(3);
    seq(&format!(
        "E:<module>:{module_line} E:K:{class_line} R:K:39 E:main:51 E:outer:15 {leafs}R:outer:19 {generator} \
         E:catcher:31 E:raiser:27 R:raiser:28 R:catcher:35 {inits} {keys}R:main:58 R:<module>:61"
    ))
}

/// What calls.py's worker thread does.
pub fn expected_worker() -> Vec<String> {
    seq(&format!(
        "E:worker:47 E:outer:15 {}R:outer:19 R:worker:48",
        "E:middle:11 E:leaf:7 R:leaf:8 R:middle:12 ".repeat(2)
    ))
}

/// Calls of fib(n): 2 * fib(n + 1) - 1.
pub fn fib_calls(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n + 1 {
        (a, b) = (b, a + b);
    }
    2 * a - 1
}

/// The frames of a D stack key or trace: the lines indented as dtrace
/// indents stack frames.
pub fn d_stack_frames(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix(&" ".repeat(14)))
        .filter(|l| !l.starts_with(' '))
        .map(str::to_string)
        .collect()
}

/// The stack a test program wrote with `traceback.extract_stack()` at its
/// event (`file:line (function)`, innermost first, `inner` the innermost of
/// its four frames).
pub fn stack_oracle(path: &std::path::Path, version: &str) -> Vec<String> {
    let want: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{version}: the oracle {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(want.len(), 4, "{version}: the oracle's shape: {want:?}");
    assert!(want[0].ends_with("(inner)"), "{want:?}");
    want
}
