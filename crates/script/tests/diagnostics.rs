//! Golden diagnostics: each `tests/diagnostics/NAME.stp` (SystemTap) and
//! `NAME.d` (D) must fail to compile with exactly the text of `NAME.err` (location, message, the
//! source line, the caret, notes and hints). `PYTAP_BLESS=1` rewrites the
//! `.err` files from what the compiler says now.

mod common;

#[test]
fn every_script_fails_with_its_golden_text() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics");
    let bless = std::env::var_os("PYTAP_BLESS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "stp" || e == "d"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        let compiled = if path.extension().is_some_and(|e| e == "d") {
            common::compile_d(&text)
        } else {
            common::compile_with(&text, &[]).0
        };
        let got = match compiled {
            Ok(_) => "(compiled)\n".to_string(),
            Err(e) => e,
        };
        let golden = path.with_extension("err");
        if bless {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- want\n{want}--- got\n{got}",
                path.display()
            ));
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} golden scripts found in {}",
        dir.display()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
