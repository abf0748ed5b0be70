//! `pytap info`: versions and per-marker verdicts for every marker class.

use crate::harness::{fixture, pytap, system_libpython, system_python};

/// `(marker, sites, support)` for each of the eight markers, in order.
fn verdicts(path: &str) -> (String, Vec<(String, u64, String)>) {
    let json = pytap(&["info", "--json", path]).json();
    let markers = json["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["marker"].as_str().unwrap().to_string(),
                m["sites"].as_u64().unwrap(),
                m["support"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (json["cpython"].as_str().unwrap().to_string(), markers)
}

fn expect(rows: &[(&str, u64, &str)]) -> Vec<(String, u64, String)> {
    rows.iter()
        .map(|(m, n, s)| (m.to_string(), *n, s.to_string()))
        .collect()
}

#[test]
fn python_3_9_everything_fires() {
    let (version, v) = verdicts(fixture("3.9").binary.to_str().unwrap());
    assert_eq!(version, "3.9.2");
    assert_eq!(
        v,
        expect(&[
            ("function__entry", 1, "fires"),
            ("function__return", 1, "fires"),
            ("line", 1, "fires"),
            ("gc__start", 1, "fires"),
            ("gc__done", 1, "fires"),
            ("import__find__load__start", 1, "fires"),
            ("import__find__load__done", 1, "fires"),
            ("audit", 1, "fires"),
        ])
    );
}

#[test]
fn python_3_11_entry_needs_arming() {
    for path in [
        fixture("3.11").binary.clone(),
        system_python(),
        system_libpython(),
    ] {
        let (version, v) = verdicts(path.to_str().unwrap());
        assert_eq!(version, "3.11.2");
        assert_eq!(
            v[0],
            ("function__entry".into(), 1, "fires_when_armed".into())
        );
        assert!(
            v[1..].iter().all(|(_, n, s)| *n == 1 && s == "fires"),
            "{v:?}"
        );
    }
    let json = pytap(&["info", "--json", "/usr/bin/python3.11"]).json();
    assert!(
        json["markers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cpython#98894")
    );
    assert!(
        json["markers"][0]["workaround"]
            .as_str()
            .unwrap()
            .contains("switches the line marker on without recording any line")
    );
    assert_eq!(json["version_source"], "Py_Version symbol");
    assert_eq!(json["role"], "executable");
}

#[test]
fn python_3_13_and_3_14_have_no_function_markers() {
    for (v, version, audit_sites) in [("3.13", "3.13.5", 1), ("3.14", "3.14.8", 5)] {
        let (got_version, rows) = verdicts(fixture(v).binary.to_str().unwrap());
        assert_eq!(got_version, version);
        assert_eq!(
            rows,
            expect(&[
                ("function__entry", 0, "absent"),
                ("function__return", 0, "absent"),
                ("line", 0, "absent"),
                ("gc__start", 1, "fires"),
                ("gc__done", 1, "fires"),
                ("import__find__load__start", 1, "fires"),
                ("import__find__load__done", 1, "fires"),
                ("audit", audit_sites, "fires"),
            ])
        );
    }
    let json = pytap(&["info", "--json", fixture("3.13").binary.to_str().unwrap()]).json();
    assert!(
        json["markers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("PEP 669")
    );
}

#[test]
fn python_3_15_function_markers_are_unbalanced() {
    let (version, v) = verdicts(fixture("3.15").binary.to_str().unwrap());
    assert_eq!(version, "3.15.0");
    assert_eq!(
        v,
        expect(&[
            ("function__entry", 1, "unbalanced"),
            ("function__return", 1, "unbalanced"),
            ("line", 0, "absent"),
            ("gc__start", 1, "fires"),
            ("gc__done", 1, "fires"),
            ("import__find__load__start", 2, "fires"),
            ("import__find__load__done", 2, "fires"),
            ("audit", 4, "fires"),
        ])
    );
    let json = pytap(&["info", "--json", fixture("3.15").binary.to_str().unwrap()]).json();
    assert!(
        json["markers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("generator")
    );
    assert!(
        json["markers"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("__init__")
    );
    // Each marker's workaround is about that marker: generator creations
    // are entries, the shim's are returns.
    let entry_fix = json["markers"][0]["workaround"].as_str().unwrap();
    let return_fix = json["markers"][1]["workaround"].as_str().unwrap();
    assert!(entry_fix.contains("generator"), "{entry_fix}");
    assert!(!return_fix.contains("generator"), "{return_fix}");
    assert!(return_fix.contains("shim"), "{return_fix}");
    assert_eq!(json["fails_on_non_utf8_paths"], true);
}

#[test]
fn text_output_names_version_place_and_verdicts() {
    let out = pytap(&["info", fixture("3.15").binary.to_str().unwrap()]);
    let text = out.ok();
    assert!(
        text.contains("  CPython     3.15.0 (read from the Py_Version symbol)\n"),
        "{text}"
    );
    assert!(
        text.contains("  markers in  the interpreter executable, ELF EXEC\n"),
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with("line ")).unwrap();
    assert!(line.contains(" 0  absent "), "{line}");
    let lib = pytap(&["info", system_libpython().to_str().unwrap()]);
    assert!(
        lib.ok()
            .contains("  markers in  a shared library (libpython), ELF DYN\n")
    );
}

#[test]
fn scan_finds_the_interpreters_with_markers_and_leaves_out_the_rest() {
    let dir = crate::harness::scratch("scan");
    // Not a Python at all, though named like one: left out.
    std::fs::copy("/bin/true", dir.join("python3.99")).unwrap();
    // A script (as pyenv's shims are): left out.
    std::fs::write(
        dir.join("python3-shim"),
        "#!/bin/sh\nexec /usr/bin/python3.11 \"$@\"\n",
    )
    .unwrap();
    let path = format!("{}:/usr/bin", dir.display());
    let out = std::process::Command::new(crate::harness::pytap_bin())
        .args(["info", "--scan", "--json"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = json["interpreters"].as_array().unwrap();
    let system = found
        .iter()
        .find(|f| f["path"] == "/usr/bin/python3.11")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(system["cpython"], "3.11.2");
    assert_eq!(system["markers"][0]["support"], "fires_when_armed");
    assert!(
        found
            .iter()
            .all(|f| !f["path"].as_str().unwrap().contains("python3.99"))
    );
    assert!(
        found
            .iter()
            .all(|f| !f["path"].as_str().unwrap().contains("shim"))
    );
    // The text view names the columns and says what they mean.
    let text = std::process::Command::new(crate::harness::pytap_bin())
        .args(["info", "--scan"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("PATH"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("/usr/bin/python3.11") && l.contains(" armed ")),
        "{text}"
    );
}
