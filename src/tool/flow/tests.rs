//! `pytap flow`'s builder and line formats, without a kernel.

use super::*;

fn f(name: &str) -> FuncId {
    FuncId {
        filename: "/app/t.py".into(),
        funcname: name.into(),
    }
}

fn run(b: &mut FlowBuilder, events: &[(bool, &str)]) -> Vec<String> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, (entry, name))| {
            b.feed(FuncEvent {
                entry: *entry,
                pid: 1,
                tid: 1,
                ts_ns: i as u64 * 1000,
                func: f(name),
                lineno: 3,
            })
        })
        .map(|l| {
            format!(
                "{}{}{}",
                " ".repeat(l.depth),
                if l.entry { ">" } else { "<" },
                l.func.funcname
            )
        })
        .collect()
}

const CALLS: &[(bool, &str)] = &[
    (true, "main"),
    (true, "setup"),
    (false, "setup"),
    (true, "start"),
    (true, "work"),
    (false, "work"),
    (false, "start"),
    (false, "main"),
];

#[test]
fn within_shows_only_the_inside_rebased() {
    let mut b = FlowBuilder::new(
        Some(FuncFilter::parse("start", "--within").unwrap()),
        vec![],
        None,
    );
    assert_eq!(run(&mut b, CALLS), [">start", " >work", " <work", "<start"]);
}

#[test]
fn filter_and_max_depth_keep_true_depths() {
    let mut b = FlowBuilder::new(
        None,
        vec![FuncFilter::parse("*.py:w*", "--filter").unwrap()],
        None,
    );
    assert_eq!(run(&mut b, CALLS), ["  >work", "  <work"]);
    let mut b = FlowBuilder::new(None, vec![], Some(2));
    assert_eq!(
        run(&mut b, CALLS),
        [">main", " >setup", " <setup", " >start", " <start", "<main"]
    );
    assert!(FuncFilter::parse("", "--filter").is_err());
    assert_eq!(
        FuncFilter::parse("main", "--filter")
            .unwrap()
            .literal_func(),
        Some(b"main".to_vec())
    );
    assert_eq!(
        FuncFilter::parse("ma*", "--filter").unwrap().literal_func(),
        None
    );
    assert_eq!(
        FuncFilter::parse("*/app.py:main", "--filter")
            .unwrap()
            .literal_func(),
        Some(b"main".to_vec())
    );
    assert_eq!(
        FuncFilter::parse("app.py:ma?n", "--filter")
            .unwrap()
            .literal_func(),
        None
    );
    assert!(
        !FuncFilter::parse("nomatch:x", "--filter")
            .unwrap()
            .matches(&f("x"))
    );
    // A file part without `/` matches the base name.
    assert!(
        FuncFilter::parse("t.py:x", "--filter")
            .unwrap()
            .matches(&f("x"))
    );
    assert!(
        !FuncFilter::parse("app/t.py:x", "--filter")
            .unwrap()
            .matches(&f("x"))
    );
    assert!(
        FuncFilter::parse("*/app/t.py:x", "--filter")
            .unwrap()
            .matches(&f("x"))
    );
    // Errors name the option they came from.
    assert_eq!(
        FuncFilter::parse("[", "--within").unwrap_err().to_string(),
        "--within '[': Pattern syntax error near position 0: invalid range pattern"
    );
}

#[test]
fn filters_that_matched_nothing_are_named() {
    let mut b = FlowBuilder::new(
        Some(FuncFilter::parse("nothere", "--within").unwrap()),
        vec![],
        None,
    );
    run(&mut b, CALLS);
    assert_eq!(b.unmatched(), ["--within 'nothere'"]);
    let mut b = FlowBuilder::new(
        Some(FuncFilter::parse("main", "--within").unwrap()),
        vec![
            FuncFilter::parse("work", "--filter").unwrap(),
            FuncFilter::parse("zzz", "--filter").unwrap(),
        ],
        None,
    );
    run(&mut b, CALLS);
    assert_eq!(b.unmatched(), ["--filter 'zzz'"]);
}

#[test]
fn systemtap_and_dtrace_lines() {
    let line = FlowLine {
        entry: true,
        pid: 7,
        tid: 8,
        ts_ns: 123456789,
        thread_ns: 11_408_000,
        depth: 7,
        func: FuncId {
            filename: "Lib/_abcoll.py".into(),
            funcname: "__contains__".into(),
        },
        lineno: 362,
    };
    let mut out = Vec::new();
    write_line(
        &mut out,
        Format::Text,
        FlowStyle::Systemtap,
        "python",
        false,
        &line,
    )
    .unwrap();
    // The HOWTO's example line.
    assert_eq!(
        String::from_utf8_lossy(&out),
        " 11408 python(8):        => __contains__ in Lib/_abcoll.py:362\n"
    );
    let mut out = Vec::new();
    let ret = FlowLine {
        entry: false,
        depth: 1,
        ..line
    };
    write_line(
        &mut out,
        Format::Text,
        FlowStyle::Dtrace,
        "python",
        false,
        &ret,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "123456789\tfunction-return: _abcoll.py:__contains__:362\n"
    );
}
