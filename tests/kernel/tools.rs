//! The built-in tools (flow, gc, imports, audit) on real interpreters:
//! exact depths, pauses paired per generation, import trees, filtered
//! audit events, in text and JSON Lines.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{
    expected_main, expected_worker, fib_calls, fixture, pytap, require_kernel, scratch, script,
    system_python, tool_jsonl,
};

/// Depth of each entry/return of an expected `E:f:l R:f:l` sequence.
fn with_depths(seq: &[String]) -> Vec<String> {
    let mut depth = 0usize;
    seq.iter()
        .map(|s| {
            if s.starts_with('E') {
                depth += 1;
                format!("{s}@{}", depth - 1)
            } else {
                depth -= 1;
                format!("{s}@{depth}")
            }
        })
        .collect()
}

/// Flow lines of calls.py per thread (first-appearance order), depths
/// rebased to the thread's first calls.py line.
fn flow_of_calls(lines: &[Value]) -> Vec<Vec<String>> {
    let file = script("calls.py");
    let mut order = Vec::new();
    let mut threads: BTreeMap<u64, Vec<(String, i64)>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["filename"] == file.as_str()) {
        let tid = l["tid"].as_u64().unwrap();
        if !threads.contains_key(&tid) {
            order.push(tid);
        }
        let kind = if l["type"] == "entry" { "E" } else { "R" };
        threads.entry(tid).or_default().push((
            format!("{kind}:{}:{}", l["funcname"].as_str().unwrap(), l["lineno"]),
            l["depth"].as_i64().unwrap(),
        ));
    }
    order
        .into_iter()
        .map(|tid| {
            let seq = &threads[&tid];
            let base = seq[0].1;
            seq.iter()
                .map(|(s, d)| format!("{s}@{}", d - base))
                .collect()
        })
        .collect()
}

#[test]
fn flow_depths_are_exact_on_3_9_and_3_11() {
    require_kernel();
    let gen9 =
        "E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24";
    let gen11 =
        "E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:23";
    let cases = [
        (
            fixture("3.9").binary.clone(),
            expected_main(3, 38, gen9, true),
        ),
        (
            fixture("3.11").binary.clone(),
            expected_main(0, 38, gen11, true),
        ),
        (system_python(), expected_main(0, 38, gen11, true)),
    ];
    for (python, main) in cases {
        let py = python.display().to_string();
        let (lines, run) = tool_jsonl("flow", &["--", &py, &script("calls.py")]);
        run.ok();
        let threads = flow_of_calls(&lines);
        assert_eq!(threads.len(), 2, "{py}: {threads:?}");
        // Exceptions unwind (raiser returns, then catcher), threads interleave.
        assert_eq!(threads[0], with_depths(&main), "{py}: main thread");
        assert_eq!(threads[1], with_depths(&expected_worker()), "{py}: worker");
        assert!(
            !run.stderr.contains("returns without an entry"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn flow_on_3_15_hides_the_shim_and_generator_creation() {
    require_kernel();
    let py = fixture("3.15").binary.display().to_string();
    let (lines, run) = tool_jsonl("flow", &["--", &py, &script("calls.py")]);
    run.ok();
    // The `__init__` shim's returns are not shown, and said to be the
    // shim's (they were counted as returns without an entry).
    assert!(!lines.iter().any(|l| l["filename"] == "__init__"));
    assert!(
        run.stderr
            .contains("returns of 3.15's __init__ shim frame not shown"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("returns without an entry"),
        "{}",
        run.stderr
    );
    // The probe recognised the creation of `gen` (and of the generators
    // the interpreter's start-up makes): nothing was left open.
    assert!(
        run.stderr.contains("generator creations not shown"),
        "{}",
        run.stderr
    );
    // (The notice of unmatched returns and entries left open comes only
    // when there are some.)
    assert!(
        !run.stderr.contains("entries that never returned"),
        "{}",
        run.stderr
    );
    let threads = flow_of_calls(&lines);
    let gen15 =
        "E:gen:22 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:24 E:gen:24 R:gen:23";
    assert_eq!(
        threads[0],
        with_depths(&expected_main(0, -1, gen15, false)),
        "main thread"
    );
    assert_eq!(threads[1], with_depths(&expected_worker()), "worker");
}

#[test]
fn flow_text_styles_and_within() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let calls = script("calls.py");
    let run = pytap(&["flow", "--within", "catcher", "--", &py, &calls]);
    // An exact name is filtered in the kernel: only catcher's 4 events cross.
    assert!(
        run.stderr.contains("pytap: 4 events, 0 lost"),
        "{}",
        run.stderr
    );
    let tid_of = |line: &str| line.split(['(', ')']).nth(1).unwrap().to_string();
    let lines: Vec<&str> = run.ok().lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let tid = tid_of(lines[0]);
    let body: Vec<String> = lines
        .iter()
        .map(|l| l.split_once("):").unwrap().1.to_string())
        .collect();
    assert_eq!(
        body,
        [
            format!(" => catcher in {calls}:31"),
            format!("  => raiser in {calls}:27"),
            format!("  <= raiser in {calls}:28"),
            format!(" <= catcher in {calls}:35"),
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("python3.9({tid}):")))
    );
    // --within calls.py's main leaves out everything import time runs
    // (site.main, importlib, the class body of K), and starts at depth 0.
    let (lines, run) = tool_jsonl("flow", &["--within", "*/calls.py:main", "--", &py, &calls]);
    run.ok();
    // FUNC is exact, so the kernel filters by it (every `main`, the file
    // glob is applied in userspace); a glob in FUNC leaves it all to
    // userspace.
    let events = |stderr: &str| -> u64 {
        let at = stderr
            .find(" events, ")
            .unwrap_or_else(|| panic!("{stderr}"));
        stderr[..at].rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (_, everything) = tool_jsonl("flow", &["--within", "*/calls.py:ma*", "--", &py, &calls]);
    assert!(
        4 * events(&run.stderr) < events(&everything.stderr),
        "{}\n{}",
        run.stderr,
        everything.stderr
    );
    let first = &lines[0];
    assert_eq!(
        (
            first["type"].as_str(),
            first["funcname"].as_str(),
            first["depth"].as_i64()
        ),
        (Some("entry"), Some("main"), Some(0))
    );
    let last = lines.last().unwrap();
    assert_eq!(
        (
            last["type"].as_str(),
            last["funcname"].as_str(),
            last["depth"].as_i64()
        ),
        (Some("return"), Some("main"), Some(0))
    );
    assert!(!lines.iter().any(|l| l["funcname"] == "_find_and_load"
        || l["funcname"] == "K"
        || l["funcname"] == "<module>"));
    assert!(
        lines.iter().all(|l| l["tid"] == first["tid"]),
        "the worker thread is not inside main"
    );
    assert_eq!(
        lines.iter().filter(|l| l["funcname"] == "leaf").count(),
        6,
        "main's 3 leaf calls"
    );
    // DTrace style: timestamp, probe name right-aligned to 15, basename.
    let run = pytap(&[
        "flow", "--style", "dtrace", "--within", "raiser", "--", &py, &calls,
    ]);
    let lines: Vec<Vec<&str>> = run.ok().lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0][1], " function-entry:calls.py:raiser:27");
    assert_eq!(lines[1][1], "function-return:calls.py:raiser:28");
    assert!(lines[0][0].parse::<u64>().unwrap() < lines[1][0].parse::<u64>().unwrap());
    // --max-depth and --filter keep true depths.
    let (lines, run) = tool_jsonl("flow", &["--filter", "*/calls.py:leaf", "--", &py, &calls]);
    run.ok();
    let depths: Vec<i64> = lines.iter().map(|l| l["depth"].as_i64().unwrap()).collect();
    assert_eq!(lines.len(), 2 * 5, "3 leafs in main, 2 in the worker");
    assert!(lines.iter().all(|l| l["funcname"] == "leaf"));
    // <module> 0, main 1, outer 2, middle 3, leaf 4.
    assert_eq!(&depths[..6], [4, 4, 4, 4, 4, 4]);
}

#[test]
fn flow_names_what_a_version_cannot_give() {
    require_kernel();
    // With markers only (by default 3.13's function events come from
    // inside the interpreter: tests/kernel/in_process.rs).
    let py = fixture("3.13").binary.display().to_string();
    let run = pytap(&["flow", "--capture", "markers", "--", &py, "-c", "pass"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("3.13"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn gc_pairs_collections_per_generation_on_every_version() {
    require_kernel();
    for v in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let py = fixture(v).binary.display().to_string();
        let (lines, run) = tool_jsonl("gc", &["--", &py, &script("gcwork.py")]);
        run.ok();
        let collections: Vec<&Value> = lines.iter().filter(|l| l["type"] == "collection").collect();
        // gcwork.py's four explicit collections of 10 cycles each, in order.
        let tens: Vec<i64> = collections
            .iter()
            .filter(|c| c["collected"] == 10)
            .map(|c| c["generation"].as_i64().unwrap())
            .collect();
        assert_eq!(tens, [0, 1, 2, 2], "{v}");
        assert!(
            collections
                .iter()
                .all(|c| c["pause_ns"].as_u64().unwrap() > 0),
            "{v}"
        );
        // The summary adds up the collections.
        for summary in lines.iter().filter(|l| l["type"] == "generation") {
            let g = &summary["generation"];
            let of_gen: Vec<&&Value> = collections
                .iter()
                .filter(|c| c["generation"] == *g)
                .collect();
            assert_eq!(summary["collections"], json!(of_gen.len()), "{v}");
            let total: u64 = of_gen.iter().map(|c| c["pause_ns"].as_u64().unwrap()).sum();
            assert_eq!(summary["total_ns"], json!(total), "{v}");
            let hist: u64 = summary["histogram"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["count"].as_u64().unwrap())
                .sum();
            assert_eq!(hist, of_gen.len() as u64, "{v}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l["type"] == "generation" && l["generation"] == 2),
            "{v}"
        );
    }
    // Text: a line per collection, then the summary table and histograms.
    let py = fixture("3.11").binary.display().to_string();
    let run = pytap(&["gc", "--", &py, &script("gcwork.py")]);
    let text = run.ok();
    assert!(
        text.starts_with("      TIME(s)      PID      TID  GEN   PAUSE(us)  COLLECTED\n"),
        "{text}"
    );
    assert!(text.contains("\nGEN  COLLECTIONS"), "{text}");
    assert!(text.contains("pauses of generation 2 (ns):"), "{text}");
}

#[test]
fn imports_form_a_tree_with_self_and_cumulative_time() {
    require_kernel();
    for v in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let py = fixture(v).binary.display().to_string();
        let (lines, run) = tool_jsonl("imports", &["--", &py, &script("imports.py")]);
        run.ok();
        let find = |m: &str| {
            lines
                .iter()
                .find(|l| l["module"] == m)
                .unwrap_or_else(|| panic!("{v}: no {m}"))
        };
        let json = find("json");
        assert_eq!(
            (
                json["found"].clone(),
                json["depth"].clone(),
                json["parent"].clone()
            ),
            (json!(true), json!(0), Value::Null),
            "{v}"
        );
        let missing = find("no_such_module_xyz");
        assert_eq!(
            (missing["found"].clone(), missing["depth"].clone()),
            (json!(false), json!(0)),
            "{v}"
        );
        // json.decoder is imported while json is, one level down.
        let decoder = find("json.decoder");
        assert_eq!(
            (decoder["parent"].clone(), decoder["depth"].clone()),
            (json!("json"), json!(1)),
            "{v}"
        );
        // Children finish first; self time excludes them.
        let pos = |m: &str| lines.iter().position(|l| l["module"] == m).unwrap();
        assert!(pos("json.decoder") < pos("json"), "{v}");
        let children: u64 = lines
            .iter()
            .filter(|l| l["parent"] == "json")
            .map(|l| l["cumulative_ns"].as_u64().unwrap())
            .sum();
        let cum = json["cumulative_ns"].as_u64().unwrap();
        assert_eq!(json["self_ns"].as_u64().unwrap(), cum - children, "{v}");
    }
}

#[test]
fn audit_filters_by_glob_and_decodes_arguments() {
    require_kernel();
    for v in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let py = fixture(v).binary.display().to_string();
        let run = pytap(&[
            "audit",
            "-e",
            "x.*,pytap.none",
            "--",
            &py,
            &script("audit.py"),
        ]);
        let text = run.ok();
        let events: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split("  ").last().unwrap())
            .collect();
        assert_eq!(
            events,
            ["x.y(1, 'a', b'b', None, (2, 3.5))", "pytap.none()"],
            "{v}: {text}"
        );
        let (lines, run) = tool_jsonl(
            "audit",
            &["-e", "pytap.more", "--", &py, &script("audit.py")],
        );
        run.ok();
        assert_eq!(lines.len(), 1, "{v}");
        assert_eq!(
            lines[0]["args"],
            json!([1, 2, 3, 4, 5, 6, 7, 8, {"more": 2}]),
            "{v}"
        );
    }
}

#[test]
fn top_counts_summed_over_intervals_are_exact() {
    require_kernel();
    for python in [
        fixture("3.9").binary.clone(),
        fixture("3.11").binary.clone(),
        fixture("3.15").binary.clone(),
    ] {
        let py = python.display().to_string();
        let elapsed = scratch("top").join("elapsed");
        let (views, run) = tool_jsonl(
            "top",
            &[
                "-n",
                "0",
                "--interval",
                "0.05",
                "--",
                &py,
                &script("fib.py"),
                // About 400k calls: at the trap's ~1 µs each, several
                // intervals even on the fastest interpreter.
                "26",
                elapsed.to_str().unwrap(),
            ],
        );
        run.ok();
        assert!(
            views.len() >= 2,
            "{py}: several intervals expected, got {}",
            views.len()
        );
        let fib: u64 = views
            .iter()
            .flat_map(|v| v["rows"].as_array().unwrap().iter())
            .filter(|r| r["funcname"] == "fib" && r["filename"] == script("fib.py").as_str())
            .map(|r| r["calls"].as_u64().unwrap())
            .sum();
        assert_eq!(fib, fib_calls(26), "{py}");
        // The summary says what was counted: every call, not the records
        // (in the kernel from the markers; from the agent on 3.11).
        let total: u64 = views.iter().map(|v| v["calls"].as_u64().unwrap()).sum();
        let counted = if py.contains("3.11") {
            format!("pytap: {total} calls counted ({total} events from inside the interpreter)")
        } else {
            format!("pytap: {total} calls counted in the kernel (")
        };
        assert!(run.stderr.contains(&counted), "{py}: {}", run.stderr);
        for v in &views {
            let rows: u64 = v["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["calls"].as_u64().unwrap())
                .sum();
            assert_eq!(
                v["calls"].as_u64().unwrap(),
                rows,
                "{py}: -n 0 shows every row"
            );
        }
        // fib is defined at line 8.
        assert!(
            views
                .iter()
                .flat_map(|v| v["rows"].as_array().unwrap().iter())
                .any(|r| r["funcname"] == "fib" && r["lineno"] == 8)
        );
    }
}

#[test]
fn top_plain_text_has_the_howto_columns() {
    require_kernel();
    let py = fixture("3.15").binary.display().to_string();
    let elapsed = scratch("top-text").join("elapsed");
    let run = pytap(&[
        "top",
        "-n",
        "3",
        "--",
        &py,
        &script("fib.py"),
        "18",
        elapsed.to_str().unwrap(),
    ]);
    let text = run.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("--- interval 1 ("), "{text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["PID", "FILENAME", "LINE", "FUNCTION", "CALLS"]
    );
    let fib: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        fib[1..],
        [
            script("fib.py").as_str(),
            "8",
            "fib",
            &fib_calls(18).to_string()
        ],
        "{text}"
    );
    assert_eq!(lines.len(), 5, "three rows: {text}");
}

#[test]
fn calls_counts_are_exact_and_recursion_is_not_double_counted() {
    require_kernel();
    for v in ["3.9", "3.11", "3.15"] {
        let py = fixture(v).binary.display().to_string();
        let (rows, run) = tool_jsonl("calls", &["-n", "0", "--", &py, &script("calls.py")]);
        run.ok();
        let of = |name: &str| -> &Value {
            rows.iter()
                .find(|r| r["funcname"] == name && r["filename"] == script("calls.py").as_str())
                .unwrap_or_else(|| panic!("{v}: no {name}"))
        };
        for (name, line, calls) in [
            ("leaf", 7, 5),
            ("middle", 11, 5),
            ("outer", 15, 2),
            ("keyf", 43, 3),
            ("__init__", 39, 3),
            ("catcher", 31, 1),
            ("raiser", 27, 1),
            ("worker", 47, 1),
            ("main", 51, 1),
        ] {
            assert_eq!(
                (of(name)["lineno"].as_i64(), of(name)["calls"].as_u64()),
                (Some(line), Some(calls)),
                "{v}: {name}"
            );
        }
        // Every leaf is inside a middle: totals nest.
        assert!(
            of("leaf")["total_ns"].as_u64() < of("middle")["total_ns"].as_u64(),
            "{v}"
        );
        let main = of("main");
        assert!(main["self_ns"].as_u64() < main["total_ns"].as_u64(), "{v}");

        let elapsed = scratch("calls-fib").join("elapsed");
        let (rows, run) = tool_jsonl(
            "calls",
            &[
                "-n",
                "0",
                "--hist",
                "--",
                &py,
                &script("fib.py"),
                "16",
                elapsed.to_str().unwrap(),
            ],
        );
        run.ok();
        let fib = rows.iter().find(|r| r["funcname"] == "fib").unwrap();
        let module = rows
            .iter()
            .find(|r| r["funcname"] == "<module>" && r["filename"] == script("fib.py").as_str())
            .unwrap();
        assert_eq!(fib["calls"].as_u64(), Some(fib_calls(16)), "{v}");
        let total = fib["total_ns"].as_u64().unwrap();
        // Recursion: the total is fib(16)'s own duration, not the sum over levels.
        assert!(total <= module["total_ns"].as_u64().unwrap(), "{v}");
        assert!(
            fib["mean_ns"].as_u64().unwrap() * fib_calls(16) > total,
            "{v}: per-call durations nest"
        );
        assert_eq!(
            fib["self_ns"], fib["total_ns"],
            "{v}: all of fib's time is in fib"
        );
        let hist: u64 = fib["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(hist, fib_calls(16), "{v}");
    }
}

#[test]
fn top_live_view_in_a_terminal_quits_and_restores_it() {
    require_kernel();
    let py = fixture("3.15").binary.display().to_string();
    let mut busy =
        crate::harness::ChildGuard::spawn(std::process::Command::new(&py).arg(script("busy.py")));
    busy.wait_for_line("ready", std::time::Duration::from_secs(20));
    let pid = busy.pid();
    let marker = scratch("top-live").join("done");
    let _ = std::fs::remove_file(&marker);
    let shell = format!(
        "{} top -p {pid} --interval 0.2; echo $? > {m}.code; stty -a > {m}.stty; touch {m}; sleep 60",
        crate::harness::pytap_bin().display(),
        m = marker.display()
    );
    let term = crate::harness::Tmux::start("top-live", 160, 30, &shell);
    let secs = std::time::Duration::from_secs;
    term.wait_for("the live view", secs(20), |s| s.contains("busy.py"));
    let view = term.screen();
    assert!(view.contains("pytap top: interval"), "{view}");
    assert!(view.contains("FUNCTION") && view.contains("tick"), "{view}");
    term.send("s");
    term.wait_for("s to re-sort", secs(10), |s| s.contains("sorted by pid"));
    term.send("q");
    crate::harness::wait_until("q to quit", secs(10), || marker.exists());
    let after = term.screen();
    drop(term);
    let code = std::fs::read_to_string(marker.with_extension("code")).unwrap();
    let stty = std::fs::read_to_string(marker.with_extension("stty")).unwrap();
    assert_eq!(code.trim(), "0");
    // Cooked mode again: canonical input and echo on.
    assert!(
        stty.split_whitespace().any(|w| w == "icanon")
            && stty.split_whitespace().any(|w| w == "echo"),
        "{stty}"
    );
    // Back on the main screen, with the last view printed plainly.
    assert!(!after.contains("[s]ort"), "{after}");
    assert!(after.contains("--- interval"), "{after}");
    // The target kept running and is unharmed.
    assert!(busy.is_running());
    let (code, rest) = busy.finish();
    assert_eq!((code, rest.as_str()), (0, "done True\n"));
}
