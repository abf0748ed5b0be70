//! The D front end's unit tests: parsing and translation.

use super::*;
use crate::ast::{ExprKind, StmtKind};

fn parse_ok(text: &str) -> DProgram {
    parse(
        FileId(0),
        text,
        &DOptions {
            macro_args: vec!["42".into(), "hello".into()],
            quiet: true,
            zdefs: false,
        },
    )
    .unwrap_or_else(|d| panic!("{}", d.message))
}

#[test]
fn the_howto_call_stack_script_parses() {
    let text = include_str!("../../../../tests/scripts/howto/call_stack.d");
    let p = parse_ok(text);
    assert_eq!(p.clauses, 4);
    let Item::Global(globals) = &p.file.items[0] else {
        panic!("globals first")
    };
    let names: Vec<_> = globals.iter().map(|g| g.name.name.as_str()).collect();
    assert_eq!(names, ["self->indent", "self->trace"]);
    let Item::Probe(first) = &p.file.items[1] else {
        panic!()
    };
    assert_eq!(first.points[0].text(), "process.mark(\"function-entry\")");
    // The predicate is the first statement: `if (!(pred)) next;`.
    assert!(matches!(first.body.stmts[0].kind, StmtKind::If { .. }));
    // `self->trace = 0;` releases the variable.
    let Item::Probe(last) = &p.file.items[4] else {
        panic!()
    };
    assert!(matches!(last.body.stmts[1].kind, StmtKind::Delete(_)));
}

#[test]
fn aggregations_macros_and_ticks() {
    let p = parse_ok(
        "#pragma D option quiet\npython$1:::function-entry { @calls[copyinstr(arg1)] = count(); @ = sum(arg2); x = $$2; }\ntick-100ms { printa(@calls); }",
    );
    assert!(p.option("quiet"));
    assert_eq!(p.pids.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [42]);
    assert_eq!(p.aggregations, ["@calls", "@"]);
    let Item::Probe(tick) = &p.file.items[2] else {
        panic!()
    };
    assert_eq!(tick.points[0].text(), "timer.ms(100)");
    let Item::Probe(entry) = &p.file.items[1] else {
        panic!()
    };
    let StmtKind::Expr(e) = &entry.body.stmts[0].kind else {
        panic!()
    };
    assert!(matches!(
        e.kind,
        ExprKind::AggSet {
            func: crate::ast::AggFunc::Count,
            ..
        }
    ));
}

#[test]
fn errors_name_what_is_missing() {
    let err = |t: &str| {
        parse(FileId(0), t, &DOptions::default())
            .unwrap_err()
            .message
    };
    assert!(err("syscall::read:entry {}").contains("`python` provider"));
    assert!(err("BEGIN { x = $1; }").contains("macro argument $1 is not given"));
    assert!(err("BEGIN { @a = 1; }").contains("aggregation is given values"));
    assert!(err("BEGIN { x = vtimestamp; }").contains("vtimestamp"));
    assert!(err("python*:libpython3.11.so.1.0::gc-start {}").contains("module"));
}
