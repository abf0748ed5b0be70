//! `pytap stap` on real interpreters: the HOWTO's scripts unmodified (and
//! the `.library` variant) against a `sys.setprofile` oracle, `top.stp`'s
//! counts over timer ticks, swapped arrays that lose no increment, the
//! gc, import and audit markers on every fixture version, and the errors.

use std::collections::BTreeMap;

use crate::harness::{
    embed_program, fixture, howto, oracle, pytap, require_kernel, root, script, system_python,
};

/// One line of the hierarchy scripts: SystemTap's `thread_indent` then
/// `=> func in file:line`.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    elapsed: u64,
    tid: u32,
    depth: usize,
    entry: bool,
    func: String,
    file: String,
    lineno: i64,
}

/// Parses `{:>6} {comm}({tid}):{indent} => {func} in {file}:{line}`,
/// asserting the format byte for byte (`comm` is the thread's name, which
/// threads of 3.14+ set themselves: `None` takes any).
fn parse_line(l: &str, comm: Option<&str>) -> Line {
    let (head, rest) = l.split_at(6);
    let elapsed: u64 = head
        .trim_start()
        .parse()
        .unwrap_or_else(|_| panic!("{l:?}"));
    assert_eq!(format!("{elapsed:>6}"), head, "{l:?}");
    let rest = rest.strip_prefix(' ').unwrap();
    let close = rest.find("):").unwrap_or_else(|| panic!("{l:?}"));
    let open = rest[..close].rfind('(').unwrap();
    let found = &rest[..open];
    if let Some(comm) = comm {
        assert_eq!(found, comm, "{l:?}");
    }
    let comm = found;
    let (tid, rest) = (&rest[open + 1..close], &rest[close + 2..]);
    let depth = rest.len() - rest.trim_start_matches(' ').len();
    let rest = &rest[depth..];
    let (arrow, rest) = rest.split_at(2);
    let entry = match arrow {
        "=>" => true,
        "<=" => false,
        _ => panic!("{l:?}"),
    };
    let rest = rest.strip_prefix(' ').unwrap();
    let (func, rest) = rest.split_once(" in ").unwrap();
    let (file, line) = rest.rsplit_once(':').unwrap();
    let parsed = Line {
        elapsed,
        tid: tid.parse().unwrap(),
        depth,
        entry,
        func: func.to_string(),
        file: file.to_string(),
        lineno: line.parse().unwrap(),
    };
    assert_eq!(
        format!(
            "{:>6} {comm}({}):{:depth$}{} {} in {}:{}",
            parsed.elapsed,
            parsed.tid,
            "",
            arrow,
            parsed.func,
            parsed.file,
            parsed.lineno,
            depth = parsed.depth
        ),
        l
    );
    parsed
}

/// `main()`'s events from a hierarchy script's lines, as the oracle writes
/// them (depth relative to main), after checking SystemTap's time rules:
/// 0 at each outermost entry, never decreasing within one.
fn main_events(lines: &[Line], file: &str) -> Vec<String> {
    let mut last = 0;
    for l in lines {
        if l.entry && l.depth == 1 {
            assert_eq!(l.elapsed, 0, "an outermost entry restarts the clock: {l:?}");
        } else {
            assert!(l.elapsed >= last, "time went back: {l:?}");
        }
        last = l.elapsed;
    }
    let start = lines
        .iter()
        .position(|l| l.entry && l.func == "main" && l.file == file)
        .expect("main entered");
    let base = lines[start].depth;
    let mut out = Vec::new();
    for l in &lines[start..] {
        if l.file == file {
            out.push(format!(
                "{} {} {} {}",
                if l.entry { "E" } else { "R" },
                l.func,
                l.lineno,
                l.depth - base
            ));
        }
        if !l.entry && l.func == "main" && l.file == file {
            break;
        }
    }
    out
}

fn comm_of(python: &str) -> String {
    let name = std::path::Path::new(python)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    name.chars().take(15).collect()
}

#[test]
fn the_howto_hierarchy_scripts_match_the_setprofile_oracle() {
    require_kernel();
    let file = script("hierarchy.py");
    let tapset_dir = root().join("tests/scripts/howto").display().to_string();
    // Each fixture, and its twin without markers (the agent's events).
    let builds = ["3.9", "3.11", "3.13", "3.14", "3.15"]
        .into_iter()
        .flat_map(|v| {
            [
                (v, fixture(v).binary.display().to_string(), true),
                (
                    v,
                    crate::harness::fixture_without_markers(v)
                        .binary
                        .display()
                        .to_string(),
                    false,
                ),
            ]
        });
    for (version, py, marked) in builds {
        let want = oracle::hierarchy(&py);
        let cmd = format!("{py} {file}");
        let comm = comm_of(&py);
        // show-call-hierarchy.stp writes `\\n`: one line, literal `\n`s.
        let run = pytap(&["stap", &howto("show-call-hierarchy.stp"), "-c", &cmd]);
        let out = run.ok();
        assert!(
            !out.contains('\n'),
            "{version}: SystemTap prints `\\\\n` as a backslash and n"
        );
        let lines: Vec<Line> = out
            .split("\\n")
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l, Some(&comm)))
            .collect();
        assert_eq!(
            main_events(&lines, &file),
            want,
            "{version}: show-call-hierarchy.stp"
        );
        // The same through the HOWTO's tapset, and through pytap's own.
        for include in [Some(tapset_dir.as_str()), None] {
            let mut args = vec!["stap"];
            if let Some(dir) = include {
                args.extend(["-I", dir]);
            }
            let hierarchy = howto("tapset-call-hierarchy.stp");
            args.extend([hierarchy.as_str(), "-c", &cmd]);
            let run = pytap(&args);
            let lines: Vec<Line> = run
                .ok()
                .lines()
                .map(|l| parse_line(l, Some(&comm)))
                .collect();
            assert_eq!(
                main_events(&lines, &file),
                want,
                "{version}: tapset {include:?}"
            );
            if version == "3.11" && marked {
                // The agent by default, saying so (the markers would need
                // arming).
                assert!(
                    run.stderr
                        .contains("function events from pytap's agent inside the interpreter"),
                    "{}",
                    run.stderr
                );
            }
            if include.is_some() {
                assert!(
                    !run.stderr.contains("frameptr"),
                    "an unread frameptr is no warning: {}",
                    run.stderr
                );
            }
        }
        // `process("python")` names no binary with markers here: bound to the target.
        assert!(
            run.stderr.contains("probing the target's"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn the_library_variant_and_the_tapset_on_the_libpython_embedding() {
    require_kernel();
    let file = script("hierarchy.py");
    let want = oracle::hierarchy(&system_python().display().to_string());
    let code = format!("import runpy; runpy.run_path({file:?})");
    let embed = embed_program().display().to_string();
    let cmd = format!("{embed} '{code}'");
    let comm: String = "embed-python3.11".chars().take(15).collect();
    let run = pytap(&[
        "stap",
        &root()
            .join("tests/scripts/show-call-hierarchy-library.stp")
            .display()
            .to_string(),
        "-c",
        &cmd,
    ]);
    let lines: Vec<Line> = run
        .ok()
        .split("\\n")
        .filter(|l| !l.is_empty())
        .map(|l| parse_line(l, Some(&comm)))
        .collect();
    assert_eq!(main_events(&lines, &file), want, "{}", run.stderr);
    let run = pytap(&[
        "stap",
        "-I",
        &root().join("tests/scripts/howto").display().to_string(),
        &howto("tapset-call-hierarchy.stp"),
        "-c",
        &cmd,
    ]);
    let lines: Vec<Line> = run
        .ok()
        .lines()
        .map(|l| parse_line(l, Some(&comm)))
        .collect();
    assert_eq!(main_events(&lines, &file), want, "{}", run.stderr);
}

/// `top.stp`'s tables: per table, `(funcname -> calls)` of `file`, after
/// checking the screen-clearing header and the row format.
fn top_tables(out: &str, file: &str) -> Vec<BTreeMap<String, u64>> {
    let header = format!(
        "\x1b[2J\x1b[1;1H{:>6} {:>80} {:>6} {:>30} {:>6}",
        "PID", "FILENAME", "LINE", "FUNCTION", "CALLS"
    );
    let mut tables = Vec::new();
    for line in out.lines().filter(|l| !l.starts_with("f 1000")) {
        if line == header {
            tables.push(BTreeMap::new());
            continue;
        }
        let t: &mut BTreeMap<String, u64> = tables
            .last_mut()
            .unwrap_or_else(|| panic!("a row before a header: {line:?}"));
        // "%6d %80s %6d %30s %6d"
        assert!(
            line.len() >= 6 + 1 + 80 + 1 + 6 + 1 + 30 + 1 + 6,
            "{line:?}"
        );
        let fields: Vec<&str> = line.split_whitespace().collect();
        let n = fields.len();
        let (count, func) = (fields[n - 1], fields[n - 2]);
        if line.contains(file) {
            t.insert(func.to_string(), count.parse().unwrap());
        }
    }
    tables
}

#[test]
fn top_stp_counts_each_burst_exactly_in_its_interval() {
    require_kernel();
    let file = script("phases.py");
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let run = pytap(&["stap", &howto("top.stp"), "-c", &format!("{py} {file}")]);
        let out = run.ok();
        assert!(out.ends_with("f 1000 g 500 / f 300\n"), "{version}: {out}");
        // `<module>` (1 call) may or may not make the 20 rows.
        let tables: Vec<_> = top_tables(out, &file)
            .into_iter()
            .map(|mut t| {
                t.remove("<module>");
                t
            })
            .filter(|t| !t.is_empty())
            .collect();
        let first: BTreeMap<String, u64> = [("f".to_string(), 1000), ("g".to_string(), 500)].into();
        let second: BTreeMap<String, u64> = [("f".to_string(), 300)].into();
        assert_eq!(
            tables,
            vec![first, second],
            "{version}:\n{out}\n{}",
            run.stderr
        );
    }
}

#[test]
fn swapped_counts_lose_nothing_between_a_timers_read_and_its_delete() {
    require_kernel();
    let text = "global calls, byname, total, named\n\
        probe python.function.entry { if (funcname == \"work\") calls++; byname[funcname] += 1 }\n\
        probe timer.ms(20) { total += calls; delete calls; foreach (f in byname) named[f] += byname[f]; delete byname }\n\
        probe end { total += calls; foreach (f in byname) named[f] += byname[f]; printf(\"%d %d\\n\", total, named[\"work\"]) }";
    let py = fixture("3.15").binary.display().to_string();
    let run = pytap(&[
        "stap",
        "-e",
        text,
        "-c",
        &format!("{py} {} 200000", script("steady.py")),
    ]);
    let out = run.ok();
    assert_eq!(out, "200000\n200000 200000\n", "{}", run.stderr);
}

#[test]
fn gc_import_and_audit_markers_on_every_fixture_version() {
    require_kernel();
    // Collections are shown only between the workload's own audit events.
    let text = "global on\n\
        probe python.gc.start { if (on) printf(\"start %d\\n\", generation) }\n\
        probe python.gc.done { if (on && collected >= 10) println(\"done\") }\n\
        probe python.audit { if (isinstr(event, \"pytap.\")) printf(\"audit %s\\n\", event); if (event == \"pytap.gc\") on = 1; if (event == \"pytap.collected\") on = 0 }\n\
        probe python.import.find.load.done { if (module == \"json\" || module == \"no_such_module_xyz\") printf(\"import %s %d\\n\", module, found) }";
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let run = pytap(&[
            "stap",
            "-e",
            text,
            "-c",
            &format!("{py} {}", script("gcwork.py")),
        ]);
        let want: String = [0, 1, 2, 2]
            .iter()
            .map(|g| format!("audit pytap.gc\nstart {g}\ndone\naudit pytap.collected\n"))
            .collect();
        assert_eq!(run.ok(), want, "{version}: {}", run.stderr);
        let run = pytap(&[
            "stap",
            "-e",
            text,
            "-c",
            &format!("{py} {}", script("imports.py")),
        ]);
        assert_eq!(
            run.ok(),
            "import json 1\nimport no_such_module_xyz 0\n",
            "{version}: {}",
            run.stderr
        );
    }
}

#[test]
fn the_hierarchy_script_and_flow_see_the_same_events() {
    require_kernel();
    let py = fixture("3.15").binary.display().to_string();
    let cmd = format!("{py} {}", script("calls.py"));
    let run = pytap(&["stap", &howto("tapset-call-hierarchy.stp"), "-c", &cmd]);
    let mut script_events: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for l in run.ok().lines() {
        let l = parse_line(l, None);
        script_events.entry(l.tid).or_default().push(format!(
            "{} {} {}:{} {}",
            if l.entry { "E" } else { "R" },
            l.func,
            l.file,
            l.lineno,
            l.depth - 1
        ));
    }
    let (lines, flow) = crate::harness::tool_jsonl("flow", &["-c", &cmd]);
    flow.ok();
    let mut flow_events: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for l in lines {
        flow_events
            .entry(l["tid"].as_u64().unwrap() as u32)
            .or_default()
            .push(format!(
                "{} {} {}:{} {}",
                if l["type"] == "entry" { "E" } else { "R" },
                l["funcname"].as_str().unwrap(),
                l["filename"].as_str().unwrap(),
                l["lineno"],
                l["depth"]
            ));
    }
    // Thread ids differ between the runs: compare the threads in order.
    let a: Vec<_> = script_events.into_values().collect();
    let b: Vec<_> = flow_events.into_values().collect();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert!(a.iter().map(Vec::len).sum::<usize>() > 1000);
}

#[test]
fn errors_of_scripts_at_run_time_and_at_load_time() {
    require_kernel();
    // Kernel probes: 3.9's markers (3.11's function events come from the
    // agent by default).
    let py = fixture("3.9").binary.display().to_string();
    let cmd = format!("{py} {}", script("hierarchy.py"));
    // A division by zero in a kernel probe ends the run with the place.
    let run = pytap(&[
        "stap",
        "-e",
        "probe python.function.entry { if (funcname == \"fact\") printf(\"%d\\n\", 10 / (lineno - 18)) }",
        "-c",
        &cmd,
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("<-e>:1:70: error: division by 0\nprobe python.function.entry"),
        "{}",
        run.stderr
    );
    // A loop the verifier cannot see end: shown at the loop.
    let run = pytap(&[
        "stap",
        "-e",
        "probe python.function.entry { while (1) { } }",
        "-c",
        &cmd,
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("<-e>:1:31: error: the kernel's verifier refused the code pytap made of this: infinite loop detected"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("needs a bound it can see"),
        "{}",
        run.stderr
    );
    // A marker this CPython does not have: the version and the verdict.
    let py13 = fixture("3.13").binary.display().to_string();
    // (With markers only: by default 3.13's function events come from
    // inside the interpreter, tests/kernel/in_process.rs.)
    let run = pytap(&[
        "stap",
        "--capture",
        "markers",
        &howto("show-call-hierarchy.stp"),
        "-c",
        &format!("{py13} -c pass"),
    ]);
    let line = run.one_line_error();
    assert!(
        line.contains("(CPython 3.13") && line.contains("has no function__entry marker"),
        "{line}"
    );
    // `process.mark` needs a target.
    let run = pytap(&["stap", "-e", "probe process.mark(\"gc__start\") { }"]);
    assert!(
        run.one_line_error()
            .contains("probes the target: run the script with -c CMD or -x PID")
    );
}

#[test]
fn begin_end_and_timers_without_markers() {
    require_kernel();
    let run = pytap(&[
        "stap",
        "-e",
        "global n; probe begin { printf(\"%s %d\\n\", @1, $2) } probe timer.ms(30) { if (++n == 3) exit() } probe end { println(\"ticks \", n) }",
        "hello",
        "7",
    ]);
    assert_eq!(run.ok(), "hello 7\nticks 3\n");
}

#[test]
fn a_running_process_by_pid_and_every_process_of_a_binary() {
    require_kernel();
    let _system_wide = crate::harness::system_wide();
    // The 3.9 fixture: the system-wide probe below arms every process
    // running it, and no other test checks 3.9's semaphores.
    let python = fixture("3.9").binary.clone();
    let mut target = crate::harness::ChildGuard::spawn(
        std::process::Command::new(&python).arg(script("busy.py")),
    );
    target.wait_for_line("ready", std::time::Duration::from_secs(20));
    let pid = target.pid();
    // -x: the probes, `target()`, `$$name`, a timer that exits, `end`.
    let text = format!(
        "global n\n\
         probe process.mark(\"function__entry\") {{ if ($$name == \"function__entry\" && pid() == target()) n++ }}\n\
         probe timer.ms(300) {{ exit() }}\n\
         probe end {{ printf(\"%s %d\\n\", n > 0 ? \"calls\" : \"none\", target() == {pid}) }}"
    );
    let run = pytap(&["stap", "-e", &text, "-x", &pid.to_string()]);
    assert_eq!(run.ok(), "calls 1\n", "{}", run.stderr);
    assert!(crate::harness::nothing_armed(pid), "probes left in {pid}");
    // No target: every process running the binary, here the one above.
    let text = format!(
        "probe process(\"{}\").mark(\"function__return\") {{ if (pid() == {pid}) {{ printf(\"%s\\n\", $$parms); exit() }} }}",
        python.display()
    );
    let run = pytap(&["stap", "-e", &text]);
    let out = run.ok();
    assert!(
        out.starts_with("$arg1=0x") && out.contains(" $arg2=0x") && out.contains(" $arg3=0x"),
        "{out}"
    );
    assert!(crate::harness::nothing_armed(pid), "probes left in {pid}");
    assert!(target.is_running());
}

/// An address-keyed array (top.stp's layout: string keys the kernel keeps
/// as addresses) counted by the kernel in a 3.9 parent and by pytap on the
/// in-process capture's events of its 3.13 child: one key, both parts.
#[test]
fn an_address_keyed_array_adds_the_kernel_and_the_in_process_counts() {
    require_kernel();
    let dir = crate::harness::scratch("stap-address-merge");
    let child = dir.join("child.py");
    std::fs::write(
        &child,
        "def parent_fn():\n    return 0\n\n\nfor _ in range(3):\n    parent_fn()\n",
    )
    .unwrap();
    let program = dir.join("count.stp");
    std::fs::write(
        &program,
        "global calls;\n\
         probe python.function.entry { calls[funcname] += 1; }\n\
         probe end { printf(\"parent_fn %d\\n\", calls[\"parent_fn\"]); }\n",
    )
    .unwrap();
    let parent = fixture("3.9").binary.display().to_string();
    let py13 = fixture("3.13").binary.display().to_string();
    let run = pytap(&[
        "stap",
        &program.display().to_string(),
        "--capture",
        "in-process",
        "-c",
        &format!(
            "{parent} {} {py13} {}",
            script("spawner.py"),
            child.display()
        ),
    ]);
    // spawner.py's parent_fn once (3.9, markers), the child's three times
    // (3.13, in-process).
    assert_eq!(run.ok(), "parent_fn 4\n");
}
