//! Name resolution, probe points and type inference on the HOWTO's
//! scripts and on the forms scripts use.

mod common;

use common::*;
use pytap_script::ir::{Binary, ExprKind, PointKind, StmtKind, Ty};

fn howto(name: &str) -> String {
    std::fs::read_to_string(format!("{HOWTO}/{name}")).unwrap()
}

#[test]
fn show_call_hierarchy_binds_two_markers_of_python() {
    let c = ok(&howto("show-call-hierarchy.stp"));
    let points: Vec<_> = c
        .program
        .probes
        .iter()
        .map(|p| p.point.kind.clone())
        .collect();
    assert_eq!(
        points,
        [0, 1].map(|marker| PointKind::Marker {
            binary: Binary::Path("python".into()),
            library: None,
            marker
        })
    );
    let locals: Vec<_> = c.program.probes[0]
        .locals
        .iter()
        .map(|l| (l.name.as_str(), l.ty))
        .collect();
    assert_eq!(
        locals,
        [
            ("filename", Ty::Str),
            ("funcname", Ty::Str),
            ("lineno", Ty::Long)
        ]
    );
    assert!(c.warnings.list.is_empty(), "{:?}", c.warnings);
}

#[test]
fn top_through_the_howto_tapset_and_through_pytaps_own() {
    for tapsets in [
        vec![("python-tapset.stp", howto("python-tapset.stp"))],
        vec![],
    ] {
        let ts: Vec<(&str, &str)> = tapsets.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let (c, _) = compile_with(&howto("top.stp"), &ts);
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        let g = &c.program.globals[0];
        assert_eq!(g.name, "fn_calls");
        assert_eq!(g.keys, [Ty::Long, Ty::Str, Ty::Str, Ty::Long]);
        assert_eq!(g.value, Ty::Long);
        assert_eq!(c.program.probes.len(), 2);
        assert_eq!(
            c.program.probes[1].point.kind,
            PointKind::Timer {
                period_ns: 1_000_000_000
            }
        );
        // `frameptr = $arg4` is never read: dropped, so no frame is read.
        let entry = &c.program.probes[0];
        let live: Vec<_> = entry
            .body
            .iter()
            .filter(|s| !matches!(&s.kind, StmtKind::Block(b) if b.is_empty()))
            .collect();
        assert_eq!(live.len(), 4, "filename, funcname, lineno and the count");
    }
}

#[test]
fn the_tapset_hierarchy_uses_the_alias_prologue() {
    let ts = howto("python-tapset.stp");
    let (c, _) = compile_with(
        &howto("tapset-call-hierarchy.stp"),
        &[("python-tapset.stp", &ts)],
    );
    let c = c.unwrap();
    assert_eq!(c.program.probes.len(), 2);
    // The prologue's 4 assignments (frameptr dropped) and the printf.
    let body = &c.program.probes[1].body;
    assert_eq!(body.len(), 5);
    assert!(matches!(&body[4].kind, StmtKind::Expr(e) if matches!(e.kind, ExprKind::Print(_))));
}

#[test]
fn frameptr_read_is_the_frame_context() {
    let c = ok("probe python.function.entry { printf(\"%x\\n\", frameptr) }");
    let mut found = false;
    for s in &c.program.probes[0].body {
        if let StmtKind::Expr(e) = &s.kind
            && let ExprKind::Assign(_, _, v) = &e.kind
            && matches!(v.kind, ExprKind::Ctx(pytap_script::ir::Ctx::Frame))
        {
            found = true;
        }
    }
    assert!(found);
}

#[test]
fn wildcards_and_several_points_become_one_probe_each() {
    let c = ok(
        "probe process(\"/x/python3.11\").mark(\"gc__*\"), process.mark(\"audit\") { printf(\"%s\\n\", $$name) }",
    );
    let kinds: Vec<_> = c
        .program
        .probes
        .iter()
        .map(|p| p.point.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            PointKind::Marker {
                binary: Binary::Path("/x/python3.11".into()),
                library: None,
                marker: 3
            },
            PointKind::Marker {
                binary: Binary::Path("/x/python3.11".into()),
                library: None,
                marker: 4
            },
            PointKind::Marker {
                binary: Binary::Target,
                library: None,
                marker: 7
            },
        ]
    );
    assert!(c.program.probes.iter().all(|p| p.decl == 0));
}

#[test]
fn types_are_learnt_across_probes_and_functions() {
    let c = ok("global names, count\n\
        function base:string(path) { return path }\n\
        probe python.function.entry { names[tid()] = base(filename); count[funcname]++ }\n\
        probe end { foreach (t in names) printf(\"%d %s\\n\", t, names[t]) }");
    let g: Vec<_> = c
        .program
        .globals
        .iter()
        .map(|g| (g.name.as_str(), g.keys.clone(), g.value))
        .collect();
    assert_eq!(
        g,
        [
            ("names", vec![Ty::Long], Ty::Str),
            ("count", vec![Ty::Str], Ty::Long)
        ]
    );
    assert_eq!(c.program.functions[0].ret, Some(Ty::Str));
    assert_eq!(c.program.functions[0].locals[0].ty, Ty::Str);
}

#[test]
fn statistics_and_histograms() {
    let c = ok("global lat, by\n\
        probe python.function.return { lat <<< lineno; by[funcname] <<< 1 }\n\
        probe end { print(@hist_log(lat)); printf(\"%d %d\\n\", @count(lat), @avg(lat)); foreach (f in by @sum -) println(f) }");
    assert_eq!(c.program.globals[0].value, Ty::Stats);
    assert_eq!(
        c.program.globals[0].hist,
        Some(pytap_script::ir::HistShape::Log)
    );
    assert_eq!(c.program.globals[1].keys, [Ty::Str]);
}

#[test]
fn a_local_read_but_never_assigned_is_a_warning() {
    assert_eq!(
        warnings("probe begin { printf(\"%d\\n\", x) }"),
        "t.stp:1:30: warning: `x` is never assigned, so it is always 0\nprobe begin { printf(\"%d\\n\", x) }\n                             ^\n"
    );
}

#[test]
fn script_arguments() {
    let c = ok("probe begin { printf(\"%d %s\\n\", $1 + 1, @2) }");
    assert_eq!(c.program.probes.len(), 1);
    assert!(
        err("probe begin { x = $3 }").contains("`$3` is argument 3 after the script, and 2 given")
    );
    assert!(err("probe begin { x = $2 }").contains("`$2` is a number, and argument 2 is `five`"));
}

#[test]
fn providers_and_marker_spellings() {
    let c = ok("probe process(\"/x/python\").provider(\"python\").mark(\"gc-start\") { }");
    assert!(matches!(
        c.program.probes[0].point.kind,
        PointKind::Marker { marker: 3, .. }
    ));
    assert!(
        err("probe process(\"/x/python\").provider(\"node\").mark(\"gc__start\") { }")
            .contains("pytap knows the markers of the `python` provider, not `node`")
    );
}

/// The printf arguments of each print statement of the first probe.
fn print_args(src: &str) -> Vec<usize> {
    ok(src).program.probes[0]
        .body
        .iter()
        .filter_map(|s| match &s.kind {
            StmtKind::Expr(e) => match &e.kind {
                ExprKind::Print(p) => Some(p.args.len()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn adjacent_printfs_are_fused_into_one_record() {
    assert_eq!(
        print_args(r#"probe begin { printf("%d ", 1); printf("%s %d\n", "a", 2); printf("x") }"#),
        [3]
    );
    // Something with an effect in the second keeps them apart, and so
    // does another print function between them.
    assert_eq!(
        print_args(r#"global x probe begin { printf("%d ", x); printf("%d\n", x++) }"#),
        [1, 1]
    );
    assert_eq!(
        print_args(r#"probe begin { printf("a"); println("b"); printf("c") }"#),
        [0, 1, 0]
    );
}

#[test]
fn stacks_are_strings_that_d_marks_as_stack_keys() {
    let c =
        compile_d("python$target:::audit { @[jstack()] = count(); @n[jstack(3), 1] = count(); }")
            .unwrap_or_else(|e| panic!("{e}"));
    let g = &c.program.globals;
    assert_eq!(g[0].keys, [Ty::Str]);
    assert!(g[0].stack_key(0));
    assert!(g[1].stack_key(0) && !g[1].stack_key(1));
    // SystemTap's names for it.
    let c = ok(
        "global x probe process.mark(\"audit\") { print_pybacktrace(); x[sprint_pybacktrace()] <<< 1 }",
    );
    assert_eq!(c.program.globals[0].keys, [Ty::Str]);
}

#[test]
fn bad_stack_arguments_get_one_clear_error() {
    let e = compile_d("python$target:::audit { trace(jstack(1, 2, 3)); }").unwrap_err();
    assert!(
        e.contains("`jstack()` takes 0 or 1 or 2 argument(s), 3 given"),
        "{e}"
    );
    let e = compile_d("python$target:::audit { trace(jstack(arg0)); }").unwrap_err();
    assert!(
        e.contains("frame count must be a non-negative integer constant"),
        "{e}"
    );
    let e = err("probe process.mark(\"audit\") { print_pybacktrace(1) }");
    assert!(
        e.contains("`print_pybacktrace` takes no arguments, 1 given"),
        "{e}"
    );
}
