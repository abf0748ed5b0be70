//! Names sent once: function returns and lines go lean once their names
//! were sent, and the engine names them from the latest full record with
//! the same pointers. Held to a workload that frees and reuses string
//! addresses with other text, against a `sys.setprofile` oracle.

use crate::harness::{fixture, require_kernel, scratch, script, trace_jsonl};

#[test]
fn reused_string_addresses_never_lend_a_return_old_names() {
    require_kernel();
    for version in ["3.9", "3.11", "3.15"] {
        let python = fixture(version).binary.display().to_string();
        let dir = scratch(&format!("sent-once-{version}"));
        let (addresses, oracle) = (dir.join("addresses"), dir.join("oracle"));
        let status = std::process::Command::new(&python)
            .args([&script("fresh_names.py"), addresses.to_str().unwrap()])
            .args(["--oracle", oracle.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "{version}: the oracle run");
        let expected: Vec<String> = std::fs::read_to_string(&oracle)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(expected.len(), 1200, "{version}: four events a round");

        let cmd = format!(
            "{python} {} {}",
            script("fresh_names.py"),
            addresses.display()
        );
        let (events, run) = trace_jsonl(
            &format!("sent-once-trace-{version}"),
            // The markers' string addresses (3.11's default is the agent).
            &[
                "--capture",
                "markers",
                "-m",
                "function__entry",
                "-m",
                "function__return",
                "-c",
                &cmd,
            ],
        );
        run.ok();
        assert!(run.stderr.contains(" 0 lost"), "{version}: {}", run.stderr);
        assert!(
            !run.stderr.contains("names were lost"),
            "{version}: {}",
            run.stderr
        );
        let got: Vec<String> = events
            .iter()
            .filter(|e| {
                e["filename"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("<fresh"))
            })
            .map(|e| {
                let kind = if e["marker"] == "function__entry" {
                    "E"
                } else {
                    "R"
                };
                format!(
                    "{kind} {} {}",
                    e["filename"].as_str().unwrap(),
                    e["funcname"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(got, expected, "{version}");
        assert_rounds_consistent(&events, version);

        // The traced run did reuse addresses with other text: most rounds'
        // file names sit where an earlier round's did.
        let text = std::fs::read_to_string(&addresses).unwrap();
        let filenames: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = filenames.iter().collect();
        assert!(
            filenames.len() - distinct.len() >= 100,
            "{version}: only {} of {} rounds reused an address",
            filenames.len() - distinct.len(),
            filenames.len()
        );
    }
}

/// Each fresh round's events name that round's code only: file `<fresh I
/// …>`, function `<module>` or `fresh_I_…`.
fn assert_rounds_consistent(events: &[serde_json::Value], what: &str) -> usize {
    let mut seen = 0;
    for e in events {
        let Some(file) = e["filename"].as_str().filter(|f| f.starts_with("<fresh ")) else {
            continue;
        };
        let round = file.split(' ').nth(1).unwrap();
        let func = e["funcname"].as_str().unwrap();
        assert!(
            func == "<module>" || func.starts_with(&format!("fresh_{round}_")),
            "{what}: {func} in {file}"
        );
        seen += 1;
    }
    seen
}

#[test]
fn lines_alone_are_read_whole_and_stay_exact() {
    require_kernel();
    // Without entries in the program nothing goes lean: every line is read.
    let python = fixture("3.9").binary.display().to_string();
    let addresses = scratch("sent-once-lines").join("addresses");
    let cmd = format!(
        "{python} {} {}",
        script("fresh_names.py"),
        addresses.display()
    );
    let (events, run) = trace_jsonl("sent-once-lines-trace", &["-m", "line", "-c", &cmd]);
    run.ok();
    // Three lines a round: the def, the call, the body.
    assert_eq!(assert_rounds_consistent(&events, "lines"), 900);
    // Nor does its program name lines from earlier records: cli::dumps.
    // With entries, lines and returns go lean, and stay exact.
    let (events, run) = trace_jsonl(
        "sent-once-all-trace",
        &[
            "-m",
            "line",
            "-m",
            "function__entry",
            "-m",
            "function__return",
            "-c",
            &cmd,
        ],
    );
    run.ok();
    assert_eq!(assert_rounds_consistent(&events, "all"), 2100);
}
