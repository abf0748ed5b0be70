//! Scripts: any text through the SystemTap front end, the checker and the
//! placement never panics, and every error renders with a location (a
//! diagnostic's span always lies in its file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap::engine::codegen::script::placement;
use pytap::engine::codegen::script::catalog::catalog;
use pytap_script::check::{Dialect, Input, compile};
use pytap_script::source::SourceMap;
use pytap_script::tapset;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut map = SourceMap::new();
    let script = map.add("fuzz.stp", text);
    let builtin = map.add(tapset::NAME, tapset::TEXT);
    let catalog = catalog();
    let args = ["1".to_string(), "a".to_string()];
    // The same text as SystemTap and as D: both front ends must give a
    // program or located errors, never panic.
    for dialect in [
        Dialect::Stap,
        Dialect::D {
            quiet: false,
            zdefs: false,
        },
    ] {
        match compile(Input {
            sources: &map,
            script: &[script],
            tapsets: &[builtin],
            catalog: &catalog,
            args: &args,
            dialect,
        }) {
            Ok(compiled) => {
                let _ = compiled.warnings.render(&map);
                if let Err(diags) = placement::place(&compiled.program) {
                    for d in diags {
                        let _ = d.render(&map);
                    }
                }
            }
            Err(diags) => {
                let text = diags.render(&map);
                assert!(text.starts_with("fuzz.stp:") || text.starts_with('<'), "{text}");
            }
        }
    }
});
