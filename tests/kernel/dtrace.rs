//! `pytap dtrace` on real interpreters: the HOWTO's `call_stack.d`
//! unmodified against a `sys.setprofile` oracle, aggregations counted
//! exactly (recursion, threads) and printed in dtrace's layouts, `-l`
//! listings checked against readelf, `-p` attach with `$target`, macro
//! arguments and ticks.

use std::process::Command;
use std::time::Duration;

use crate::harness::{
    embed_program, fixture, many_clauses_d, oracle, pytap, readelf_notes, require_kernel, root,
    scratch, script, spawn_waiting_python, system_libpython,
};

fn call_stack_d() -> String {
    root()
        .join("tests/scripts/howto/call_stack.d")
        .display()
        .to_string()
}

/// `{timestamp}\t{probename:>15}:{indent}{file}:{func}:{line}` to
/// `(timestamp, "E|R func line depth")`, the layout checked byte for byte.
fn parse_call_stack_line(l: &str) -> (u64, String) {
    let (ts, rest) = l.split_once('\t').unwrap_or_else(|| panic!("{l:?}"));
    let ts: u64 = ts.parse().unwrap_or_else(|_| panic!("{l:?}"));
    let (name, rest) = rest.split_at(15);
    let kind = match name {
        " function-entry" => "E",
        "function-return" => "R",
        _ => panic!("probename not right-aligned in 15 columns: {l:?}"),
    };
    let rest = rest.strip_prefix(':').unwrap();
    let depth = rest.len() - rest.trim_start_matches(' ').len();
    let fields: Vec<&str> = rest.trim_start_matches(' ').split(':').collect();
    assert_eq!(
        fields[0], "call_stack.py",
        "basename(copyinstr(arg0)): {l:?}"
    );
    (ts, format!("{kind} {} {} {depth}", fields[1], fields[2]))
}

#[test]
fn call_stack_d_matches_the_setprofile_oracle() {
    require_kernel();
    let file = script("call_stack.py");
    // Each fixture, and its twin without markers (the agent's events).
    let builds = ["3.9", "3.11", "3.13", "3.14", "3.15"]
        .into_iter()
        .flat_map(|v| {
            [
                (v.to_string(), fixture(v).binary.display().to_string()),
                (
                    format!("{v} without markers"),
                    crate::harness::fixture_without_markers(v)
                        .binary
                        .display()
                        .to_string(),
                ),
            ]
        });
    for (version, py) in builds {
        let want = oracle::call_stack(&py);
        assert_eq!(want.len(), 18, "{version}: the workload's shape: {want:?}");
        let run = pytap(&[
            "dtrace",
            "-q",
            "-s",
            &call_stack_d(),
            "-c",
            &format!("{py} {file}"),
        ]);
        let out = run.ok();
        // dtrace ends every run with a newline of its own.
        let body = out
            .strip_suffix("\n\n")
            .unwrap_or_else(|| panic!("{out:?}"));
        let mut lines: Vec<(u64, String)> = body.lines().map(parse_call_stack_line).collect();
        lines.sort_by_key(|l| l.0);
        let got: Vec<String> = lines.into_iter().map(|l| l.1).collect();
        assert_eq!(got, want, "{version}: call_stack.d");
    }
}

#[test]
fn aggregations_count_recursion_and_threads_exactly() {
    require_kernel();
    let fib = script("fib.py");
    let threads = script("dthreads.py");
    let sink = scratch("dtrace-agg").join("fib.txt").display().to_string();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        // fib(15) makes 1973 calls, each entered at line 8 (its def).
        let run = pytap(&[
            "dtrace",
            "-q",
            "-n",
            "python$target:::function-entry /copyinstr(arg1) == \"fib\"/ { @calls[copyinstr(arg1)] = count(); @lines = sum(arg2); @mean = avg(arg2); @low = min(arg2); @high = max(arg2); }",
            "-c",
            &format!("{py} {fib} 15 {sink}"),
        ]);
        let want = format!(
            "\n  fib{}{:>17}\n{:>17}\n{:>17}\n{:>17}\n{:>17}\n",
            " ".repeat(47),
            1973,
            1973 * 8,
            8,
            8,
            8
        );
        assert_eq!(run.ok(), want, "{version}: fib");
        // Four threads, 2500 calls each; printa with a format.
        let run = pytap(&[
            "dtrace",
            "-n",
            "python$target:::function-entry /copyinstr(arg1) == \"work\"/ { @[copyinstr(arg1)] = count(); }",
            "-n",
            "END { printa(\"%s %@d calls\\n\", @); }",
            "-q",
            "-c",
            &format!("{py} {threads}"),
        ]);
        assert_eq!(run.ok(), "work 10000 calls\n\n", "{version}: threads");
    }
    // clear() zeroes the values and keeps the keys; trunc() drops them.
    let py = fixture("3.11").binary.display().to_string();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        "python$target:::function-entry /copyinstr(arg1) == \"fib\"/ { @[copyinstr(arg1)] = count(); @s = sum(arg2); }",
        "-n",
        "END { printa(\"%s %@d\\n\", @); clear(@); clear(@s); printa(\"%s %@d\\n\", @); printa(\"sum %@d\\n\", @s); trunc(@); printa(\"%s %@d\\n\", @); }",
        "-c",
        &format!("{py} {fib} 15 {sink}"),
    ]);
    assert_eq!(run.ok(), "fib 1973\nfib 0\nsum 0\n\n");
}

#[test]
fn quantize_and_lquantize_print_as_dtrace_does() {
    require_kernel();
    let fib = script("fib.py");
    let sink = scratch("dtrace-quantize")
        .join("fib.txt")
        .display()
        .to_string();
    let py = fixture("3.11").binary.display().to_string();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        "python$target:::function-entry /copyinstr(arg1) == \"fib\"/ { @q = quantize(arg2); @l[\"fib\"] = lquantize(arg2, 0, 20, 5); }",
        "-c",
        &format!("{py} {fib} 10 {sink}"),
    ]);
    let header = "           value  ------------- Distribution ------------- count    \n";
    let bar = "@".repeat(40);
    let want = format!(
        "\n\n{header}               4 |{e} 0        \n               8 |{bar} 177      \n              16 |{e} 0        \n\n  fib{pad}\n{header}               0 |{e} 0        \n               5 |{bar} 177      \n              10 |{e} 0        \n\n",
        e = " ".repeat(40),
        pad = " ".repeat(47),
    );
    assert_eq!(run.ok(), want);
}

/// `copyinstr(arg, len) == "literal"` reads only what the comparison
/// needs, onto the stack: cut strings, prefixes and longer names.
#[test]
fn comparisons_with_literals_respect_copyinstr_lengths() {
    require_kernel();
    let fib = script("fib.py");
    let sink = scratch("dtrace-compare")
        .join("fib.txt")
        .display()
        .to_string();
    let py = fixture("3.9").binary.display().to_string();
    let clause = |agg: &str, pred: &str| {
        format!("python$target:::function-entry /{pred}/ {{ @{agg} = count(); }}")
    };
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        &clause("all", "1"),
        "-n",
        &clause("fib", "copyinstr(arg1, 3) == \"fib\""),
        "-n",
        &clause("cut", "copyinstr(arg1, 2) == \"fib\""),
        "-n",
        &clause(
            "prefix",
            "copyinstr(arg1, 2) == \"fi\" && copyinstr(arg1) == \"fib\"",
        ),
        "-n",
        &clause("other", "copyinstr(arg1) != \"fib\""),
        "-n",
        &clause("empty", "copyinstr(arg1, 0) == \"\""),
        "-n",
        "END { printa(\"all %@d\\n\", @all); printa(\"fib %@d\\n\", @fib); printa(\"cut %@d\\n\", @cut); printa(\"prefix %@d\\n\", @prefix); printa(\"other %@d\\n\", @other); printa(\"empty %@d\\n\", @empty); }",
        "-c",
        &format!("{py} {fib} 10 {sink}"),
    ]);
    let text = run.ok();
    let all: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("all "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        text,
        format!(
            "all {all}\nfib 177\nprefix 177\nother {}\nempty {all}\n\n",
            all - 177
        )
    );
}

#[test]
fn llquantize_and_stddev_are_exact_in_the_kernel() {
    require_kernel();
    let fib = script("fib.py");
    let sink = scratch("dtrace-llquantize")
        .join("fib.txt")
        .display()
        .to_string();
    // fib(10)'s 177 calls by depth 1..10: 1, 2, 4, 8, 16, 32, 52, 44, 16, 2.
    let depths: Vec<(u128, u128)> = vec![
        (1, 1),
        (2, 2),
        (3, 4),
        (4, 8),
        (5, 16),
        (6, 32),
        (7, 52),
        (8, 44),
        (9, 16),
        (10, 2),
    ];
    // stddev of depth * 10^12: squares past 2^64, so the carry is tested.
    let scale = 1_000_000_000_000u128;
    let n: u128 = depths.iter().map(|d| d.1).sum();
    let sum: u128 = depths.iter().map(|(d, k)| d * scale * k).sum();
    let squares: u128 = depths.iter().map(|(d, k)| (d * scale).pow(2) * k).sum();
    let stddev = (squares / n - (sum / n).pow(2)).isqrt();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        let run = pytap(&[
            "dtrace",
            "-q",
            "-n",
            "python$target:::function-entry /copyinstr(arg1) == \"fib\"/ { self->d++; @ll = llquantize(self->d, 2, 0, 3, 4); @s = stddev(self->d * 1000000000000); }",
            "-n",
            "python$target:::function-return /copyinstr(arg1) == \"fib\"/ { self->d--; }",
            "-c",
            &format!("{py} {fib} 10 {sink}"),
        ]);
        let row = |label: &str, bar: usize, count: u64| {
            format!(
                "{label:>16} |{}{} {count:<9}\n",
                "@".repeat(bar),
                " ".repeat(40 - bar)
            )
        };
        let want = [
            "\n\n           value  ------------- Distribution ------------- count    \n"
                .to_string(),
            row("< 1", 0, 0),
            row("1", 0, 1),
            row("2", 0, 2),
            row("3", 1, 4),
            row("4", 5, 24),
            row("6", 19, 84),
            row("8", 14, 62),
            row("12", 0, 0),
            format!("\n {stddev:>16}\n"),
        ]
        .concat();
        assert_eq!(run.ok(), want, "{version}");
    }
}

#[test]
fn non_quiet_output_has_dtrace_s_header_and_firing_lines() {
    require_kernel();
    let run = pytap(&["dtrace", "-n", "BEGIN { trace(\"hi\"); exit(0); }"]);
    assert_eq!(
        run.ok(),
        format!(
            "CPU     ID                    FUNCTION:NAME\n{:>3} {:>6} {:>32}   {:<33}\n\n",
            run.ok()[44..47].trim(),
            1,
            ":BEGIN",
            "hi"
        )
    );
    // Quiet by the program's own pragma: no header, no firing line.
    let run = pytap(&[
        "dtrace",
        "-n",
        "#pragma D option quiet\nBEGIN { trace(\"hi\"); exit(0); }",
    ]);
    assert_eq!(run.ok(), "hi\n");
}

/// The C function of each site, as binutils sees the symbols: the
/// `FUNC` symbol of `--dyn-syms` (the fixtures have no `.symtab`) that
/// covers it, or `-`.
fn function_at(path: &std::path::Path, pc: u64) -> String {
    let out = Command::new("readelf")
        .args(["--dyn-syms", "--wide"])
        .arg(path)
        .output()
        .expect("readelf");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 8 && f[3] == "FUNC" && f[6] != "UND" {
            let start = u64::from_str_radix(f[1], 16).unwrap_or(0);
            let size: u64 = f[2].parse().unwrap_or(0);
            if size > 0 && pc >= start && pc < start + size {
                return f[7].split('@').next().unwrap().to_string();
            }
        }
    }
    "-".into()
}

fn check_listing(binary: &std::path::Path, listed: &str, what: &str) {
    let notes: Vec<_> = readelf_notes(binary)
        .into_iter()
        .filter(|n| n.provider == "python")
        .collect();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(
        lines[0],
        "   ID   PROVIDER            MODULE                          FUNCTION NAME"
    );
    let base = binary.file_name().unwrap().to_string_lossy().to_string();
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|r| r[1] != "dtrace")
        .collect();
    assert_eq!(rows.len(), notes.len(), "{what}: one row per site");
    for (i, (row, note)) in rows.iter().zip(&notes).enumerate() {
        assert_eq!(row[0], (i + 4).to_string(), "{what}");
        assert_eq!(row[2], base, "{what}");
        assert_eq!(
            row[3],
            function_at(binary, note.location),
            "{what}: {note:?}"
        );
        assert_eq!(row[4], note.name.replace("__", "-"), "{what}");
    }
}

#[test]
fn listings_name_every_site_and_its_function() {
    require_kernel();
    for version in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
        let binary = &fixture(version).binary;
        let run = pytap(&["dtrace", "-l", "-m", &binary.display().to_string()]);
        let dtrace_rows: Vec<Vec<&str>> = run
            .ok()
            .lines()
            .skip(1)
            .take(3)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            dtrace_rows,
            [
                ["1", "dtrace", "BEGIN"],
                ["2", "dtrace", "END"],
                ["3", "dtrace", "ERROR"]
            ]
        );
        check_listing(binary, run.ok(), version);
    }
    // A live embedding program: its provider is python<pid>, its module libpython.
    let mut child = crate::harness::ChildGuard::spawn(
        Command::new(embed_program())
            .arg("import sys\nprint('ready', flush=True)\nsys.stdin.read()"),
    );
    child.wait_for_line("ready", Duration::from_secs(20));
    let pid = child.pid().to_string();
    let run = pytap(&["dtrace", "-l", "-P", &format!("python{pid}")]);
    check_listing(&system_libpython(), run.ok(), "embedding");
    assert!(run.ok().contains(&format!("python{pid}")));
    // Globs in -n select rows.
    let run = pytap(&["dtrace", "-l", "-n", &format!("python{pid}:::gc-*")]);
    let names: Vec<&str> = run
        .ok()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(names, ["gc-start", "gc-done"], "note order in libpython");
}

#[test]
fn attach_with_target_macro_arguments_and_ticks() {
    require_kernel();
    let py = fixture("3.11").binary.clone();
    let mut child = spawn_waiting_python(
        &py,
        "import threading, time\ndef beat():\n    while True:\n        time.sleep(0.01)\nthreading.Thread(target=beat, daemon=True).start()",
    );
    let pid = child.pid().to_string();
    // $target is the -p process; $$1 a string macro argument; a tick ends the run.
    let run = pytap(&[
        "dtrace",
        "-q",
        "-p",
        &pid,
        "-n",
        "python$target:::function-entry /copyinstr(arg1) == $$1/ { @n = count(); }",
        "-n",
        "tick-300ms { printf(\"target %d\\n\", $target); exit(0); }",
        "beat",
    ]);
    assert_eq!(run.ok(), format!("target {pid}\n\n"), "{}", run.stderr);
    assert!(
        child.is_running(),
        "the process goes on after pytap detaches"
    );
    // An integer macro argument, and one that is missing.
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        "BEGIN { printf(\"%d\\n\", $1 + 1); exit(0); }",
        "41",
    ]);
    assert_eq!(run.ok(), "42\n\n");
    let run = pytap(&[
        "dtrace",
        "-q",
        "-n",
        "BEGIN { printf(\"%d\\n\", $2); }",
        "41",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("macro argument $2 is not given"),
        "{}",
        run.stderr
    );
    // -C is refused with one line.
    let run = pytap(&["dtrace", "-C", "-n", "BEGIN {}"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no C preprocessor"), "{}", run.stderr);
    // A description that matches no marker is an error, unless -Z (or
    // -x zdefs, or the program's pragma) allows it: the other clauses run.
    let py = fixture("3.11").binary.display().to_string();
    let program = [
        "-n",
        "python$target:::no-such-marker { trace(1); }",
        "-n",
        "python$target:::function-entry /copyinstr(arg1) == \"start\"/ { trace(\"start\"); }",
    ];
    let command = format!("{py} {}", script("call_stack.py"));
    let run = pytap(&[&["dtrace", "-q"][..], &program, &["-c", &command]].concat());
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no python marker matches `no__such__marker`"),
        "{}",
        run.stderr
    );
    for flag in [&["-Z"][..], &["-x", "zdefs"]] {
        let run = pytap(&[&["dtrace", "-q"][..], flag, &program, &["-c", &command]].concat());
        assert_eq!(run.ok(), "start\n", "{flag:?}");
    }
    let pragma = scratch("dtrace-zdefs").join("z.d");
    std::fs::write(
        &pragma,
        "#pragma D option zdefs\npython$target:::no-such-marker { trace(1); }\nEND { trace(\"end\"); }\n",
    )
    .unwrap();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-s",
        pragma.to_str().unwrap(),
        "-c",
        &command,
    ]);
    assert_eq!(run.ok(), "end\n");
}

/// `probemod`, `probefunc` and the firing line's ID name the site that
/// fired as `-l` lists it: libpython's import marker, in its C function.
#[test]
fn firing_lines_and_probefunc_name_the_site_as_the_listing_does() {
    require_kernel();
    let libpython = system_libpython();
    let listing = pytap(&["dtrace", "-l", "-m", libpython.to_str().unwrap()]);
    let row: Vec<String> = listing
        .ok()
        .lines()
        .find(|l| l.ends_with(" import-find-load-start"))
        .unwrap_or_else(|| panic!("{}", listing.ok()))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let (id, function) = (&row[0], &row[3]);
    assert_eq!(function, "PyImport_ImportModuleLevelObject");
    let run = pytap(&[
        "dtrace",
        "-n",
        "python$target:::import-find-load-start /copyinstr(arg0) == \"json\"/ { printf(\"%s %s\", probemod, probefunc); }",
        "-c",
        &format!("{} 'import json'", embed_program().display()),
    ]);
    let text = run.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "CPU     ID                    FUNCTION:NAME",
        "{text}"
    );
    let probe = format!("{function}:import-find-load-start");
    assert_eq!(
        &lines[1][3..],
        format!(" {id:>6} {probe:>32} libpython3.11.so.1.0 {function}"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
}

/// A firing looks a thread-keyed variable up once and keeps its address
/// (codegen's `script::cache`): reads after an assignment, a release and a
/// re-insertion in the same firing must see the new element, and a later
/// clause of the same firing the first one's increments.
#[test]
fn thread_variables_read_right_after_updates_in_one_firing() {
    require_kernel();
    let fib = script("fib.py");
    let sink = scratch("dtrace-self").join("fib.txt").display().to_string();
    let py = fixture("3.9").binary.display().to_string();
    let program = r#"
python$target:::function-entry
/copyinstr(arg1) == "fib"/
{
        self->n++;
        this->old = self->seen;
        self->seen = self->n;
        @replaced = sum(self->seen == self->n && this->old == self->n - 1);
        self->tmp = 5;
        self->tmp++;
        @incremented = sum(self->tmp == 6);
        self->tmp = 0;
        @released = sum(self->tmp == 0);
        self->tmp++;
        @reinserted = sum(self->tmp == 1);
        self->tmp = 0;
}

python$target:::function-entry
/copyinstr(arg1) == "fib"/
{
        @latest = max(self->n);
        @calls = count();
}

END
{
        printa("replaced %@d\n", @replaced);
        printa("incremented %@d\n", @incremented);
        printa("released %@d\n", @released);
        printa("reinserted %@d\n", @reinserted);
        printa("latest %@d\n", @latest);
        printa("calls %@d\n", @calls);
}
"#;
    let file = scratch("dtrace-self").join("self.d");
    std::fs::write(&file, program).unwrap();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-s",
        &file.display().to_string(),
        "-c",
        &format!("{py} {fib} 10 {sink}"),
    ]);
    assert_eq!(
        run.ok(),
        "replaced 177\nincremented 177\nreleased 177\nreinserted 177\nlatest 177\ncalls 177\n\n"
    );
}

/// A marker string read twice in a firing is read from the process once
/// (codegen's `script::firing`): what the second use sees, cut names and
/// the count of cut strings included, equals a single direct read.
#[test]
fn a_string_read_twice_in_a_firing_prints_as_one_read_does() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let run = |predicate: &str| {
        pytap(&[
            "dtrace",
            "-q",
            "-n",
            &format!(
                "python$target:::function-entry /{predicate}/ {{ printf(\"%s\\n\", copyinstr(arg1)); }}"
            ),
            "-c",
            &format!("{py} {}", script("longnames.py")),
        ])
    };
    let copied = run("copyinstr(arg1) != \"x\"");
    let direct = run("arg2 >= 0");
    let (copied_out, direct_out) = (copied.ok(), direct.ok());
    assert_eq!(copied_out, direct_out);
    let long: Vec<usize> = copied_out
        .lines()
        .filter(|l| l.len() >= 510 && l.bytes().all(|b| b == b'f'))
        .map(str::len)
        .collect();
    assert_eq!(
        long,
        [510, 511, 511, 511],
        "longnames.py's names, cut at 511"
    );
    for run in [&copied, &direct] {
        assert!(
            run.stderr
                .contains("2 strings were longer than 511 bytes and were cut"),
            "{}",
            run.stderr
        );
    }
}

/// 3.15's `__init__` shim returns are dropped by their names; the check
/// reads the function name into the firing's copy when the clauses read it
/// again, and directly when they do not: both drop them all.
#[test]
fn shim_returns_are_dropped_whether_the_names_are_copied_or_not() {
    require_kernel();
    let py = fixture("3.15").binary.display().to_string();
    let cmd = format!("{py} {}", script("hierarchy.py"));
    let shims = |raw: bool, clause: &str| {
        let mut args = vec!["dtrace", "-q", "-n", clause, "-c", &cmd];
        if raw {
            args.push("--raw-markers");
        }
        let run = pytap(&args);
        run.ok()
            .lines()
            .filter(|l| *l == "__init__ __init__")
            .count()
    };
    let both = "python$target:::function-return { printf(\"%s %s\\n\", copyinstr(arg0), copyinstr(arg1)); }";
    let file_only =
        "python$target:::function-return { printf(\"%s __init__\\n\", copyinstr(arg0)); }";
    for clause in [both, file_only] {
        assert!(
            shims(true, clause) > 0,
            "raw markers show the shim: {clause}"
        );
        assert_eq!(shims(false, clause), 0, "{clause}");
    }
}

#[test]
fn thousands_of_clauses_on_one_marker_all_run_in_order() {
    require_kernel();
    // 3000 clauses on function-entry: they used to make one program the
    // verifier refused ("the sequence of 8193 jumps is too complex") and
    // load time grew with the square of the clauses; now the marker's
    // clauses are spread over programs chained by tail calls. Each clause
    // counts (exactly, once per call) and the last one of each run sees
    // what the others did: they run in script order.
    let dir = scratch("dtrace-many-clauses");
    let d = many_clauses_d(&dir);
    let py = fixture("3.11").binary.display().to_string();
    let sink = dir.join("elapsed").display().to_string();
    let run = pytap(&[
        "dtrace",
        "-q",
        "-s",
        d.to_str().unwrap(),
        "-c",
        &format!("{py} {} 10 {sink}", script("fib.py")),
    ]);
    // fib(10) makes 177 calls.
    let out = run.ok();
    let numbers: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(numbers, ["530646", "2998", "177"], "{out}");
    // --dump-bpf shows the parts: cli::dumps.
}
