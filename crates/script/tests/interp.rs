//! The interpreter: `begin`/`end` bodies, and the HOWTO's probe bodies run
//! on events made up here (as they will run on events that do not come
//! from BPF).

mod common;

use common::*;
use pytap_script::interp::{Context, Interp, Output, World};
use pytap_script::ir::{PointKind, Program};
use pytap_script::store::MemStore;

/// A marker event: thread, time, arguments (strings by address).
struct Event {
    pid: i64,
    tid: i64,
    now_ns: i64,
    args: Vec<i64>,
    strings: Vec<(i64, &'static str)>,
}

impl Context for Event {
    fn pid(&self) -> i64 {
        self.pid
    }
    fn tid(&self) -> i64 {
        self.tid
    }
    fn ppid(&self) -> i64 {
        1
    }
    fn uid(&self) -> i64 {
        0
    }
    fn cpu(&self) -> i64 {
        0
    }
    fn execname(&self) -> Vec<u8> {
        b"python".to_vec()
    }
    fn target(&self) -> i64 {
        self.pid
    }
    fn now_ns(&self) -> i64 {
        self.now_ns
    }
    fn monotonic_ns(&self) -> i64 {
        self.now_ns - 1_000
    }
    fn arg(&self, i: usize) -> i64 {
        self.args.get(i).copied().unwrap_or(0)
    }
    fn frame(&self) -> i64 {
        0
    }
    fn user_string(&mut self, addr: i64, max: Option<usize>) -> Result<Vec<u8>, String> {
        let s = self
            .strings
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, s)| s.as_bytes().to_vec())
            .ok_or_else(|| "not mapped".to_string())?;
        Ok(s[..max.unwrap_or(s.len()).min(s.len())].to_vec())
    }
}

#[derive(Default)]
struct Out(Vec<u8>, Vec<String>);

impl Output for Out {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn warn(&mut self, m: &str) {
        self.1.push(m.to_string());
    }
}

fn run_kind(
    program: &Program,
    interp: &mut Interp,
    store: &mut MemStore,
    out: &mut Out,
    ev: &mut Event,
    pred: impl Fn(&PointKind) -> bool,
) {
    for probe in &program.probes {
        if pred(&probe.point.kind) {
            let mut w = World {
                ctx: ev,
                store,
                out,
            };
            interp.run_probe(program, probe, &mut w).unwrap();
        }
    }
}

fn function_event(tid: i64, us: i64, file: &'static str, func: &'static str, line: i64) -> Event {
    Event {
        pid: 100,
        tid,
        now_ns: us * 1000,
        args: vec![1, 2, line],
        strings: vec![(1, file), (2, func)],
    }
}

fn marker(
    program: &Program,
    ev: &mut Event,
    entry: bool,
    interp: &mut Interp,
    store: &mut MemStore,
    out: &mut Out,
) {
    let want = if entry { 0 } else { 1 };
    run_kind(
        program,
        interp,
        store,
        out,
        ev,
        |k| matches!(k, PointKind::Marker { marker, .. } if *marker == want),
    );
}

#[test]
fn the_hierarchy_script_indents_and_times_as_systemtap() {
    let text = std::fs::read_to_string(format!("{HOWTO}/tapset-call-hierarchy.stp")).unwrap();
    let program = ok(&text).program;
    let (mut interp, mut store, mut out) = (Interp::new(), MemStore::new(&program), Out::default());
    let calls = [
        (true, 1000, "f"),
        (true, 1011, "g"),
        (false, 1015, "g"),
        (false, 1020, "f"),
        (true, 5000, "f"),
        (false, 5002, "f"),
    ];
    for (entry, us, func) in calls {
        let mut ev = function_event(7, us, "a.py", func, 3);
        marker(&program, &mut ev, entry, &mut interp, &mut store, &mut out);
    }
    // The time base restarts when the thread is back at depth 0.
    assert_eq!(
        String::from_utf8(out.0).unwrap(),
        "     0 python(7): => f in a.py:3\n    11 python(7):  => g in a.py:3\n    15 python(7):  <= g in a.py:3\n    20 python(7): <= f in a.py:3\n     0 python(7): => f in a.py:3\n     2 python(7): <= f in a.py:3\n"
    );
}

#[test]
fn show_call_hierarchy_prints_its_backslash_n_literally() {
    let text = std::fs::read_to_string(format!("{HOWTO}/show-call-hierarchy.stp")).unwrap();
    let program = ok(&text).program;
    let (mut interp, mut store, mut out) = (Interp::new(), MemStore::new(&program), Out::default());
    let mut ev = function_event(7, 10, "a.py", "f", 3);
    marker(&program, &mut ev, true, &mut interp, &mut store, &mut out);
    let mut ev = function_event(7, 12, "a.py", "f", 4);
    marker(&program, &mut ev, false, &mut interp, &mut store, &mut out);
    assert_eq!(
        String::from_utf8(out.0).unwrap(),
        "     0 python(7): => f in a.py:3\\n     2 python(7): <= f in a.py:4\\n"
    );
}

#[test]
fn top_counts_sorts_limits_and_deletes() {
    let text = std::fs::read_to_string(format!("{HOWTO}/top.stp")).unwrap();
    let program = ok(&text).program;
    let (mut interp, mut store, mut out) = (Interp::new(), MemStore::new(&program), Out::default());
    for (func, n) in [("a", 3), ("b", 30), ("c", 7)] {
        for _ in 0..n {
            let mut ev = function_event(7, 1, "x.py", func, 1);
            marker(&program, &mut ev, true, &mut interp, &mut store, &mut out);
        }
    }
    let mut ev = function_event(7, 1, "", "", 0);
    run_kind(&program, &mut interp, &mut store, &mut out, &mut ev, |k| {
        matches!(k, PointKind::Timer { .. })
    });
    let text = String::from_utf8(out.0.clone()).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert!(lines[0].starts_with("\x1b[2J\x1b[1;1H   PID "));
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["100", "x.py", "1", "b", "30"],
            vec!["100", "x.py", "1", "c", "7"],
            vec!["100", "x.py", "1", "a", "3"]
        ]
    );
    // `delete fn_calls`: the next tick shows only the header.
    out.0.clear();
    run_kind(&program, &mut interp, &mut store, &mut out, &mut ev, |k| {
        matches!(k, PointKind::Timer { .. })
    });
    assert_eq!(String::from_utf8(out.0).unwrap().lines().count(), 1);
}

fn run_begin(text: &str) -> String {
    let program = ok(text).program;
    let (mut interp, mut store, mut out) = (Interp::new(), MemStore::new(&program), Out::default());
    let mut ev = function_event(1, 0, "", "", 0);
    run_kind(&program, &mut interp, &mut store, &mut out, &mut ev, |k| {
        matches!(k, PointKind::Begin | PointKind::End)
    });
    String::from_utf8(out.0).unwrap()
}

#[test]
fn the_language_in_begin_and_end() {
    let text = r#"
        global a, s, total = 10
        function fib:long(n:long) { if (n < 2) return n; return fib(n - 1) + fib(n - 2) }
        function base:string(path:string) {
            last = ""
            while ((t = tokenize(path, "/")) != "") { last = t; path = "" }
            return last
        }
        probe begin {
            for (i = 0; i < 10; i++) { if (i % 2) continue; a[i, "k" . sprint(i)] = i * i; if (i > 6) break }
            foreach ([k, n] in a- limit 2) printf("%d %s %d|", k, n, a[k, n])
            println("")
            x = 5; x += 3; x <<= 1; y = x-- + ++x
            printf("%d %d %d %d\n", x, y, fib(15), [2, "k2"] in a)
            for (i = 1; i <= 100; i++) s <<< i
            printf("%d %d %d %d %d\n", @count(s), @sum(s), @min(s), @max(s), @avg(s))
            printf("[%s][%s][%d][%d][%s]\n", base("/usr/lib/python3.11/os.py"), substr("abcdef", 2, 3), strlen("héllo"), isinstr("abc", "bc"), text_str("a\tb\001"))
            total -= 1
            printf("%s %d %s\n", total > 5 ? "big" : "small", strpos("hello", "l"), str_replace("a-b-c", "-", "+"))
            printd(",", 1, "two", 3)
            printdln(":", "x", "y")
            delete a[0, "k0"]
            printf("%d %d\n", [0, "k0"] in a, [4, "k4"] in a)
            exit()
        }
        probe end { println("end ", total) }
    "#;
    assert_eq!(
        run_begin(text),
        "8 k8 64|6 k6 36|\n16 32 610 1\n100 5050 1 100 50\n[os.py][cde][6][1][a\\tb\\001]\nbig 2 a+b+c\n1,two,3x:y\n0 1\nend 9\n"
    );
}

#[test]
fn runtime_errors_name_their_place() {
    let program = ok("probe begin { x = 0; printf(\"%d\", 10 / x) }").program;
    let (mut interp, mut store, mut out) = (Interp::new(), MemStore::new(&program), Out::default());
    let mut ev = function_event(1, 0, "", "", 0);
    let mut w = World {
        ctx: &mut ev,
        store: &mut store,
        out: &mut out,
    };
    let e = interp
        .run_probe(&program, &program.probes[0], &mut w)
        .unwrap_err();
    assert_eq!(e.message, "division by 0");
    assert_eq!((e.span.start, e.span.end), (34, 40), "`10 / x`");
}

#[test]
fn histograms_print_as_systemtap_draws_them() {
    let out = run_begin(
        "global h\nprobe begin { for (i = 0; i < 20; i++) h <<< i; print(@hist_linear(h, 0, 20, 5)) }",
    );
    assert_eq!(
        out,
        "value |-------------------------------------------------- count\n    0 |@@@@@                                              5\n    5 |@@@@@                                              5\n   10 |@@@@@                                              5\n   15 |@@@@@                                              5\n   20 |                                                   0\n\n"
    );
}

/// Scripts nested as deep as the parsers take (`MAX_NESTING`) compile and
/// run, and past the limit each dialect's parser says where, instead of
/// overflowing its stack. The compiler runs on a stack of its own; the
/// interpreter runs on pytap's main thread (8 MiB), which this test's
/// thread stands for (a test thread's 2 MiB is less than the interpreter
/// needs 200 levels deep in a build without optimisations).
#[test]
fn nesting_up_to_the_limit_runs_and_past_it_is_a_diagnostic() {
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(nesting_up_to_the_limit)
        .unwrap()
        .join()
        .unwrap();
}

fn nesting_up_to_the_limit() {
    use pytap_script::cursor::MAX_NESTING;
    // Each construct at the deepest nesting the limit leaves room for
    // (the probe's body and the statement take two levels).
    let depth = MAX_NESTING - 4;
    let sum = vec!["1"; depth].join("+");
    let parens = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
    let nots = format!("{}1", "!".repeat(depth - 1));
    let ifs = format!("{}x = 1", "if (1) ".repeat(depth - 2));
    for (body, want) in [
        (format!("printf(\"%d\\n\", {sum})"), format!("{depth}\n")),
        (format!("printf(\"%d\\n\", {parens})"), "1\n".into()),
        (format!("printf(\"%d\\n\", {nots})"), "0\n".into()),
        (format!("x = 0; {ifs}; printf(\"%d\\n\", x)"), "1\n".into()),
    ] {
        let text = format!("probe begin {{ {body} }}");
        assert_eq!(run_begin(&text), want, "{}", &text[..60.min(text.len())]);
    }
    // Past the limit: one diagnostic, at the construct that went too deep.
    let deep = 100_000;
    for body in [
        format!("x = {}1{}", "(".repeat(1000), ")".repeat(1000)),
        format!("x = {}", vec!["1"; 10_000].join("+")),
        format!("{}x = 1", "if (1) ".repeat(10_000)),
        format!("x = {}1", "!".repeat(deep)),
        format!("if (0) x = 1; {}", "else if (0) x = 1; ".repeat(10_000)),
        format!("x = {}1", "0 ? 1 : ".repeat(10_000)),
    ] {
        let stap = format!("probe begin {{ {body} }}");
        let e = common::compile_with(&stap, &[]).0.expect_err("refused");
        assert!(
            e.contains("error: nested too deeply"),
            "{}",
            &e[..200.min(e.len())]
        );
        assert_eq!(e.lines().filter(|l| l.contains("error")).count(), 1);
        let d = format!("BEGIN {{ {body}; }}");
        let e = common::compile_d(&d).expect_err("refused");
        assert!(
            e.contains("error: nested too deeply"),
            "{}",
            &e[..200.min(e.len())]
        );
    }
}
