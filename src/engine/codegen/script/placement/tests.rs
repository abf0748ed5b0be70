//! The placement on the HOWTO's scripts and on what the kernel cannot run.

use pytap_script::check::{Input, compile};
use pytap_script::diag::Diagnostics;
use pytap_script::source::SourceMap;
use pytap_script::tapset;

use super::*;
use crate::engine::codegen::script::catalog::catalog;

fn placed(text: &str) -> Result<(Program, Placement), String> {
    let mut map = SourceMap::new();
    let script = map.add("t.stp", text);
    let builtin = map.add(tapset::NAME, tapset::TEXT);
    let catalog = catalog();
    let compiled = compile(Input {
        sources: &map,
        script: &[script],
        tapsets: &[builtin],
        catalog: &catalog,
        args: &[],
        dialect: pytap_script::check::Dialect::Stap,
    })
    .map_err(|d| d.render(&map))?;
    let placement = place(&compiled.program).map_err(|d| Diagnostics { list: d }.render(&map))?;
    Ok((compiled.program, placement))
}

fn howto(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scripts/howto")
            .join(name),
    )
    .unwrap()
}

#[test]
fn top_stp_is_address_keyed_swapped_and_keyed_by_its_own_pid() {
    let (_, p) = placed(&howto("top.stp")).unwrap();
    let g = p.globals[0].as_ref().unwrap();
    assert!(g.address_keyed);
    assert_eq!(g.swap_slot, Some(0));
    assert_eq!(
        g.key,
        [
            KeyPart::Long,
            KeyPart::Address,
            KeyPart::Address,
            KeyPart::Long
        ],
        "pid() is in the key: no hidden pid"
    );
    assert_eq!(g.key_size(), 32);
    assert_eq!(g.value, ValueLayout::Long);
    assert!(p.outputs.is_empty(), "nothing crosses but new keys");
}

#[test]
fn an_address_key_without_the_pid_gets_a_hidden_one() {
    let (_, p) = placed("global n\nprobe python.function.entry { n[funcname] <<< 1 }").unwrap();
    let g = p.globals[0].as_ref().unwrap();
    assert_eq!(g.key, [KeyPart::Tgid, KeyPart::Address]);
    assert_eq!(
        g.value,
        ValueLayout::Stats {
            shape: None,
            squares: false
        }
    );
    assert_eq!(g.swap_slot, None);
}

#[test]
fn arrays_read_or_set_in_the_kernel_keep_their_strings() {
    let (_, p) = placed(
        "global last, seen\n\
         probe python.function.entry { last[tid()] = funcname; seen[filename] = 1 }",
    )
    .unwrap();
    let last = p.globals[0].as_ref().unwrap();
    assert_eq!(
        (last.key.as_slice(), last.value),
        (&[KeyPart::Long][..], ValueLayout::Str)
    );
    let seen = p.globals[1].as_ref().unwrap();
    assert!(!seen.address_keyed);
    assert_eq!(seen.key, [KeyPart::Bytes]);
}

#[test]
fn the_hierarchy_printf_sends_the_indent_step_the_names_and_the_line() {
    let (program, p) = placed(&howto("show-call-hierarchy.stp")).unwrap();
    assert_eq!(p.outputs.len(), 2);
    let kinds: Vec<LeafKind> = p.outputs[0].leaves.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [
            LeafKind::Indent {
                thread: true,
                kernel: false
            },
            LeafKind::Str,
            LeafKind::Str,
            LeafKind::Long
        ]
    );
    // funcname and filename are read from the marker when printed.
    let locals = &p.locals[0];
    assert_eq!(locals[0], Some(StrKind::Address { max: None }));
    assert_eq!(locals[1], Some(StrKind::Address { max: None }));
    assert_eq!(locals[2], None);
    assert!(!p.thread_indent, "no counters in the kernel");
    assert_eq!(program.probes.len(), 2);
}

#[test]
fn thread_indent_depth_keeps_the_counters_in_the_kernel() {
    let (_, p) = placed(
        "probe python.function.entry { d = thread_indent_depth(1); if (d < 3) printf(\"%s\\n\", thread_indent(0)) }",
    )
    .unwrap();
    assert!(p.thread_indent);
    assert_eq!(
        p.outputs[0].leaves[0].kind,
        LeafKind::Indent {
            thread: true,
            kernel: true
        }
    );
}

#[test]
fn string_work_that_is_only_printed_runs_in_pytap() {
    let (_, p) = placed(
        "function base:string(path:string) { return substr(path, 0, 3) }\n\
         probe python.function.entry { printf(\"%s %s\\n\", base(filename) . \"!\", sprintf(\"%d\", lineno * 2)) }",
    )
    .unwrap();
    let kinds: Vec<LeafKind> = p.outputs[0].leaves.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [LeafKind::Str, LeafKind::Long],
        "filename and lineno only"
    );
}

#[test]
fn what_the_kernel_cannot_run_is_named_with_its_place() {
    let cases = [
        (
            "global a\nprobe python.function.entry { foreach (k in a) { } }",
            "t.stp:2:31: error: `foreach` is not supported in probes that run in the kernel (marker probes) yet\n\
             probe python.function.entry { foreach (k in a) { } }\n\
             \x20                             ^~~~~~~~~~~~~~~~~~~~\n\
             hint: loop over arrays in `end` or timer probes, which run in pytap\n",
        ),
        (
            "probe python.function.entry { if (substr(funcname, 0, 1) == \"_\") next }",
            "t.stp:1:35: error: `substr` is not supported in probes that run in the kernel (marker probes) yet\n\
             probe python.function.entry { if (substr(funcname, 0, 1) == \"_\") next }\n\
             \x20                                 ^~~~~~~~~~~~~~~~~~~~~~\n\
             hint: string functions run in pytap when their value is only printed: use it in printf's arguments\n",
        ),
        (
            "global s\nprobe python.function.entry { s <<< 1; if (@count(s) > 5) next }",
            "t.stp:2:44: error: reading statistics (`@count`, …) is not supported in probes that run in the kernel (marker probes) yet\n\
             probe python.function.entry { s <<< 1; if (@count(s) > 5) next }\n\
             \x20                                          ^~~~~~~~~\n\
             hint: statistics are gathered per CPU in the kernel: read them in `end` or timer probes\n",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(placed(text).unwrap_err(), want, "{text}");
    }
}
