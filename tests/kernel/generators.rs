//! Generators, coroutines and async generators in `pytap flow`: 3.15 fires
//! `function__entry` when one is created (no return follows), and flow
//! must show the same depths as 3.9, where creation fires nothing.

use serde_json::Value;

use crate::harness::{fixture, require_kernel, script, tool_jsonl};

/// `E:name@depth` / `R:name@depth` for each line of gens.py.
fn shape(lines: &[Value]) -> String {
    let file = script("gens.py");
    lines
        .iter()
        .filter(|l| l["filename"] == file.as_str())
        .map(|l| {
            let kind = if l["type"] == "entry" { "E" } else { "R" };
            format!("{kind}:{}@{}", l["funcname"].as_str().unwrap(), l["depth"])
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// gens.py's calls; `unused_close` is what closing a never-started
/// generator runs (3.9 runs its frame to throw GeneratorExit in, 3.15
/// does not run it at all).
fn expected(unused_close: &str) -> String {
    let unused = format!("E:unused@2 {unused_close}R:unused@2");
    [
        "E:<module>@0 E:main@1 E:make@2 R:make@2 E:gen@2 R:gen@2",
        &unused,
        "E:gen@2 R:gen@2",
        &unused,
        "E:gen@2 R:gen@2",
        "E:drive@2 E:co@3 R:co@3 R:drive@2",
        "E:drive@2 E:agen@3 R:agen@3 R:drive@2",
        "E:drive@2 E:agen@3 R:agen@3 R:drive@2",
        "E:gen@2 R:gen@2 E:gen@2 R:gen@2 R:main@1 R:<module>@0",
    ]
    .join(" ")
}

#[test]
fn flow_depths_with_generators_match_between_3_9_and_3_15() {
    require_kernel();
    for (version, unused_close, creations) in
        [("3.9", "E:gen@3 R:gen@3 ", false), ("3.15", "", true)]
    {
        let py = fixture(version).binary.display().to_string();
        let (lines, run) = tool_jsonl("flow", &["--", &py, &script("gens.py")]);
        run.ok();
        assert_eq!(shape(&lines), expected(unused_close), "{version}");
        assert_eq!(
            run.stderr.contains("generator creations not shown"),
            creations,
            "{version}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("closed by an outer return")
                || run.stderr.contains(" 0 entries that never returned"),
            "{version}: {}",
            run.stderr
        );
    }
}

#[test]
fn flow_within_a_generator_function_on_3_15() {
    require_kernel();
    // --within an exact name filters in the kernel; a creation of FUNC
    // opens no FUNC frame there, so only gen's runs are shown.
    let py = fixture("3.15").binary.display().to_string();
    let (lines, run) = tool_jsonl("flow", &["--within", "gen", "--", &py, &script("gens.py")]);
    run.ok();
    let file = script("gens.py");
    let shown: Vec<String> = lines
        .iter()
        .filter(|l| l["filename"] == file.as_str())
        .map(|l| {
            format!(
                "{}:{}@{}",
                l["type"].as_str().unwrap(),
                l["funcname"].as_str().unwrap(),
                l["depth"]
            )
        })
        .collect();
    assert_eq!(
        shown,
        ["entry:gen@0", "return:gen@0"].repeat(5),
        "{}",
        run.stderr
    );
}
