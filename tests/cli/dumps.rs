//! `--dump-bpf` of one run: what a tool or a script would load, shown
//! and not loaded, and its command never run. Loads nothing, needs no
//! root: the live runs of the same programs are in `kernel::`.

use crate::harness::{fixture, howto, many_clauses_d, pytap, scratch, system_python};

#[test]
fn dump_bpf_shows_the_programs_and_runs_nothing() {
    let dir = scratch("dump-bpf");
    let marker_file = dir.join("ran");
    let cmd = format!(
        "{} -c \"open('{}', 'w')\"",
        fixture("3.11").binary.display(),
        marker_file.display()
    );
    let run = pytap(&[
        "trace",
        "--dump-bpf",
        "-m",
        "function__entry",
        "-m",
        "audit",
        "-c",
        &cmd,
    ]);
    let text = run.ok();
    assert!(!marker_file.exists(), "the command ran");
    assert!(text.contains("call get_attach_cookie#174"), "{text}");
    assert!(text.contains("call ringbuf_reserve#131"), "{text}");
    assert!(text.contains("call probe_read_user_str#114"), "{text}");
    assert!(text.contains("function__entry"), "{text}");
    assert!(
        text.contains("[arming: raises the line semaphore from Py_FatalError"),
        "{text}"
    );
    assert!(text.contains("events     RingBuf"), "{text}");
}

/// The benchmark's baselines (`--empty-probe`, `--clock-probe`): the
/// program of each (their runs: kernel::trace).
#[test]
fn benchmark_baselines_are_the_empty_and_the_clock_programs() {
    let py = fixture("3.9").binary.display().to_string();
    for (flag, program) in [
        ("--empty-probe", "0: r0 = 0\n   1: exit\n"),
        (
            "--clock-probe",
            "0: call ktime_get_ns#5\n   1: r0 = 0\n   2: exit\n",
        ),
    ] {
        let args = [
            "trace",
            flag,
            "-m",
            "function__entry",
            "-m",
            "function__return",
        ];
        let dump = pytap(&[&args[..], &["--dump-bpf", "--", &py, "-c", "pass"]].concat());
        assert!(dump.ok().contains(program), "{flag}: {}", dump.stdout);
    }
}

/// The benchmark's split probes (`trace --split-probe PART`): each
/// program leaves out its part (its runs: kernel::trace).
#[test]
fn benchmark_split_probes_leave_their_part_out_of_the_program() {
    for (version, header) in [("3.9", -40), ("3.15", -32)] {
        let py = fixture(version).binary.display().to_string();
        let markers = ["-m", "function__entry", "-m", "function__return"];
        let dump = |part: &str| {
            let args = [
                &["trace", "--split-probe", part],
                &markers[..],
                &["--dump-bpf", "--", &py, "-c", "pass"],
            ];
            // The marker program only (the task tracepoints' follow it).
            let text = pytap(&args.concat()).ok().to_string();
            let program = text.split("# program ").nth(1).unwrap_or_default();
            program.to_string()
        };
        let calls = |text: &str, helper: &str| text.matches(&format!("call {helper}#")).count();
        let none = dump("no-strings");
        assert_eq!(
            calls(&none, "probe_read_user") + calls(&none, "probe_read_user_str"),
            0,
            "{none}"
        );
        let published = |text: &str| {
            text.matches(pytap::engine::codegen::inplace::PUBLISH)
                .count()
        };
        assert!(published(&none) > 0, "{none}");
        let headers = dump("object-headers");
        assert_eq!(calls(&headers, "probe_read_user_str"), 0, "{headers}");
        let from_header = format!("r3 += {header}\n");
        assert_eq!(
            headers.matches(&from_header).count(),
            calls(&headers, "probe_read_user"),
            "{headers}"
        );
        let silent = dump("no-output");
        assert_eq!(
            calls(&silent, "ringbuf_output")
                + calls(&silent, "ringbuf_submit")
                + published(&silent),
            0,
            "{silent}"
        );
        assert!(calls(&silent, "probe_read_user_str") > 0, "{silent}");
        let timing = dump("kernel-timing");
        assert_eq!(
            calls(&timing, "ringbuf_output") + calls(&timing, "probe_read_user_str"),
            0
        );
        assert!(
            timing.contains("stacks") && timing.contains("timed"),
            "{timing}"
        );
        assert_eq!(
            calls(&timing, "ktime_get_ns"),
            2,
            "one per marker: {timing}"
        );
    }
}

#[test]
fn dump_bpf_shows_the_script_programs_and_maps() {
    let py = fixture("3.15").binary.display().to_string();
    let run = pytap(&[
        "stap",
        "--dump-bpf",
        &howto("top.stp"),
        "-c",
        &format!("{py} -c pass"),
    ]);
    let out = run.ok();
    assert!(out.contains("# program pytap_0"), "{out}");
    // fn_calls, twice (the timer swaps it), keyed by addresses; the control map.
    assert!(
        out.contains("g0         HashNoPrealloc key 32 value 8"),
        "{out}"
    );
    assert!(
        out.contains("g0b        HashNoPrealloc key 32 value 8"),
        "{out}"
    );
    assert!(out.contains("sctl"), "{out}");
    assert!(
        out.contains("script 0:"),
        "statements are marked in the program: {out}"
    );
}

#[test]
fn the_stap_help_examples_compile() {
    let help = pytap(&["stap", "--help"]);
    let text = help.ok();
    let start = text.find("-e '").expect("an -e example") + 4;
    let end = start + text[start..].find("' \\").expect("the example's end");
    let script_text = &text[start..end];
    let run = pytap(&[
        "stap",
        "--dump-bpf",
        "-e",
        script_text,
        "-c",
        &format!("{} -c pass", system_python().display()),
    ]);
    assert!(run.ok().contains("# program pytap_0"), "{}", run.stderr);
}

#[test]
fn the_trace_program_sends_returns_lean_and_raises_the_epoch_on_exec_and_exit() {
    let python = fixture("3.9").binary.display().to_string();
    let dump = pytap(&["trace", "--dump-bpf", "--", &python, "-c", "pass"]);
    let text = dump.ok();
    for needle in [
        "map[names_epoch]", // the evidence of names sent, per epoch
        "named by the latest full record",
        "raw tracepoint sched_process_exit",
        "raw tracepoint sched_process_exec",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // `flow --within` compares the name it reads: no names sent once there.
    let within = pytap(&[
        "flow",
        "--within",
        "main",
        "--dump-bpf",
        "--",
        &python,
        "-c",
        "pass",
    ]);
    assert!(!within.ok().contains("names_epoch"), "{}", within.stdout);
}

/// Without entries in the program nothing goes lean: lines are named by
/// their own records, never by an earlier one (the traces:
/// kernel::sent_once).
#[test]
fn lines_alone_are_not_named_by_earlier_records() {
    let python = fixture("3.9").binary.display().to_string();
    let dump = pytap(&[
        "trace",
        "-m",
        "line",
        "--dump-bpf",
        "--",
        &python,
        "-c",
        "pass",
    ]);
    assert!(
        !dump.ok().contains("named by the latest full record"),
        "{}",
        dump.stdout
    );
}

/// 3000 clauses on one marker are spread over programs chained by tail
/// calls: --dump-bpf shows the parts (the run: kernel::dtrace).
#[test]
fn thousands_of_clauses_on_one_marker_are_dumped_in_parts() {
    let dir = scratch("dtrace-many-clauses-dump");
    let d = many_clauses_d(&dir);
    let py = fixture("3.11").binary.display().to_string();
    let dump = pytap(&[
        "dtrace",
        "-q",
        "-s",
        d.to_str().unwrap(),
        "--dump-bpf",
        "-c",
        &py,
    ]);
    assert!(
        dump.ok().matches("(part, slot ").count() >= 30,
        "{}",
        &dump.stdout[..2000]
    );
}
