//! Compiling test scripts against CPython's marker catalogue.

#![allow(
    dead_code,
    reason = "each test binary that includes this module uses a part of it"
)]

use pytap_script::check::{Catalog, Compiled, Input, MarkerInfo, compile};
use pytap_script::source::SourceMap;
use pytap_script::tapset;

pub const HOWTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scripts/howto");

/// CPython's eight markers, as pytap describes them.
pub fn catalog() -> Catalog {
    let m = |name: &str, args: usize, function: bool| MarkerInfo {
        name: name.into(),
        args,
        function,
    };
    Catalog {
        markers: vec![
            m("function__entry", 3, true),
            m("function__return", 3, true),
            m("line", 3, false),
            m("gc__start", 1, false),
            m("gc__done", 1, false),
            m("import__find__load__start", 1, false),
            m("import__find__load__done", 2, false),
            m("audit", 2, false),
        ],
    }
}

/// Compiles `text` (named `t.stp`) with extra tapset files and the
/// built-in tapset; errors and warnings rendered.
pub fn compile_with(text: &str, tapsets: &[(&str, &str)]) -> (Result<Compiled, String>, SourceMap) {
    let mut map = SourceMap::new();
    let script = map.add("t.stp", text);
    let mut ts = Vec::new();
    for (name, t) in tapsets {
        ts.push(map.add(*name, *t));
    }
    ts.push(map.add(tapset::NAME, tapset::TEXT));
    let catalog = catalog();
    let result = compile(Input {
        sources: &map,
        script: &[script],
        tapsets: &ts,
        catalog: &catalog,
        args: &["5".to_string(), "five".to_string()],
        dialect: pytap_script::check::Dialect::Stap,
    })
    .map_err(|d| d.render(&map));
    (result, map)
}

/// Compiles `text` as a D program (named `t.d`, not quiet); errors and
/// warnings rendered.
pub fn compile_d(text: &str) -> Result<Compiled, String> {
    let mut map = SourceMap::new();
    let script = map.add("t.d", text);
    let catalog = catalog();
    compile(Input {
        sources: &map,
        script: &[script],
        tapsets: &[],
        catalog: &catalog,
        args: &["5".to_string(), "five".to_string()],
        dialect: pytap_script::check::Dialect::D {
            quiet: false,
            zdefs: false,
        },
    })
    .map_err(|d| d.render(&map))
}

/// Compiles `text`, panicking with the rendered errors.
pub fn ok(text: &str) -> Compiled {
    compile_with(text, &[]).0.unwrap_or_else(|e| panic!("{e}"))
}

/// The rendered errors of a script that must not compile.
pub fn err(text: &str) -> String {
    match compile_with(text, &[]).0 {
        Ok(_) => panic!("compiled: {text}"),
        Err(e) => e,
    }
}

/// The rendered warnings of a script that compiles.
pub fn warnings(text: &str) -> String {
    let (c, map) = compile_with(text, &[]);
    c.unwrap_or_else(|e| panic!("{e}")).warnings.render(&map)
}
