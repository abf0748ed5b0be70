//! The SystemTap front end on the HOWTO's scripts (kept byte for byte in
//! tests/scripts/howto/) and on the forms scripts use.

use pytap_script::ast::*;
use pytap_script::source::SourceMap;
use pytap_script::stap::parse;

const HOWTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scripts/howto");

fn parse_text(text: &str) -> Result<File, String> {
    let mut map = SourceMap::new();
    let id = map.add("t.stp", text);
    parse(id, text).map_err(|d| d.render(&map))
}

#[test]
fn the_howto_scripts_parse() {
    for name in [
        "show-call-hierarchy.stp",
        "python-tapset.stp",
        "tapset-call-hierarchy.stp",
        "top.stp",
    ] {
        let text = std::fs::read_to_string(format!("{HOWTO}/{name}")).unwrap();
        let file = parse_text(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!file.items.is_empty(), "{name}");
    }
}

#[test]
fn the_tapset_defines_two_prologue_aliases() {
    let text = std::fs::read_to_string(format!("{HOWTO}/python-tapset.stp")).unwrap();
    let file = parse_text(&text).unwrap();
    let aliases: Vec<_> = file
        .items
        .iter()
        .map(|i| match i {
            Item::Alias(a) => (
                a.names[0].text(),
                a.points[0].text(),
                a.epilogue,
                a.body.stmts.len(),
            ),
            _ => panic!("not an alias"),
        })
        .collect();
    assert_eq!(
        aliases,
        vec![
            (
                "python.function.entry".to_string(),
                "process(\"python\").mark(\"function__entry\")".to_string(),
                false,
                4
            ),
            (
                "python.function.return".to_string(),
                "process(\"python\").mark(\"function__return\")".to_string(),
                false,
                4
            ),
        ]
    );
}

#[test]
fn top_stp_foreach_sorts_on_the_value_descending_with_a_limit() {
    let text = std::fs::read_to_string(format!("{HOWTO}/top.stp")).unwrap();
    let file = parse_text(&text).unwrap();
    let Item::Probe(timer) = &file.items[2] else {
        panic!()
    };
    assert_eq!(timer.points[0].text(), "timer.ms(1000)");
    let foreach = timer
        .body
        .stmts
        .iter()
        .find_map(|s| match &s.kind {
            StmtKind::Foreach(f) => Some(f),
            _ => None,
        })
        .unwrap();
    let keys: Vec<_> = foreach.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(keys, ["pid", "filename", "funcname", "lineno"]);
    assert_eq!(foreach.array.name, "fn_calls");
    assert_eq!(
        foreach.sort,
        Some(Sort {
            column: 0,
            ascending: false,
            aggregate: None
        })
    );
    assert!(matches!(
        foreach.limit.as_ref().unwrap().kind,
        ExprKind::Num(20)
    ));
    // The last statement is `delete fn_calls`.
    assert!(matches!(
        &timer.body.stmts.last().unwrap().kind,
        StmtKind::Delete(Expr { kind: ExprKind::Name(n), .. }) if n == "fn_calls"
    ));
}

#[test]
fn concatenation_binds_looser_than_addition() {
    let file = parse_text("probe begin { x = \"a\" . 1 + 2 }").unwrap();
    let Item::Probe(p) = &file.items[0] else {
        panic!()
    };
    let StmtKind::Expr(Expr {
        kind: ExprKind::Assign(AssignOp::Set, _, value),
        ..
    }) = &p.body.stmts[0].kind
    else {
        panic!()
    };
    let ExprKind::Concat(parts) = &value.kind else {
        panic!("{value:?}")
    };
    assert!(matches!(parts[1].kind, ExprKind::Binary(BinOp::Add, _, _)));
}

#[test]
fn foreach_forms() {
    let text = "global a\nprobe end {\n\
        foreach (k in a) {}\n\
        foreach (k+ in a) {}\n\
        foreach (v = k in a) {}\n\
        foreach (v- = [x, y] in a limit 3) {}\n\
        foreach ([x, y+] in a) {}\n\
        foreach (x in a @sum +) {}\n}";
    let file = parse_text(text).unwrap();
    let Item::Probe(p) = &file.items[1] else {
        panic!()
    };
    let sorts: Vec<_> = p
        .body
        .stmts
        .iter()
        .map(|s| match &s.kind {
            StmtKind::Foreach(f) => (
                f.value.is_some(),
                f.keys.len(),
                f.sort.map(|s| (s.column, s.ascending, s.aggregate)),
            ),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        sorts,
        vec![
            (false, 1, None),
            (false, 1, Some((1, true, None))),
            (true, 1, None),
            (true, 2, Some((0, false, None))),
            (false, 2, Some((2, true, None))),
            (false, 1, Some((0, true, Some(StatOp::Sum)))),
        ]
    );
}

#[test]
fn probe_points_with_wildcards_libraries_and_several_points() {
    let text = "probe process(\"/usr/bin/python3.11\").library(\"libpython3.11.so.1.0\").mark(\"gc__*\"), process.mark(\"audit\"), timer.s(2), begin, end {}";
    let file = parse_text(text).unwrap();
    let Item::Probe(p) = &file.items[0] else {
        panic!()
    };
    let points: Vec<_> = p.points.iter().map(ProbePoint::text).collect();
    assert_eq!(
        points,
        [
            "process(\"/usr/bin/python3.11\").library(\"libpython3.11.so.1.0\").mark(\"gc__*\")",
            "process.mark(\"audit\")",
            "timer.s(2)",
            "begin",
            "end"
        ]
    );
}

#[test]
fn statements_without_semicolons_and_print_forms() {
    let text = "function f:string(s:string, n:long) { return substr(s, 0, n) }\n\
        probe begin { x <<< 3 x <<< 4 print(@hist_log(x)) printf(\"%d\\n\", @count(x)) println(\"a\", 1) exit() }\n\
        global x";
    let file = parse_text(text).unwrap();
    let Item::Function(f) = &file.items[0] else {
        panic!()
    };
    assert_eq!(f.ret, Some(TypeName::String));
    assert_eq!(f.params.len(), 2);
    let Item::Probe(p) = &file.items[1] else {
        panic!()
    };
    assert_eq!(p.body.stmts.len(), 6);
}
