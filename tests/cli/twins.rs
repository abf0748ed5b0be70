//! The fixtures' marker-less twins (`scripts/fetch-pythons.sh`): each is
//! its fixture's interpreter without `.note.stapsdt`, and runs as it does.

use std::path::Path;
use std::process::Command;

use crate::harness::{fixture, fixture_without_markers, fixtures, pytap, readelf_notes};

fn readelf_n(path: &Path) -> String {
    let out = Command::new("readelf")
        .args(["-n", "--wide"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("prerequisite missing: readelf (apt-get install binutils): {e}")
        });
    assert!(
        out.status.success(),
        "readelf -n failed on {}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn python(wrapper: &Path, code: &str) -> String {
    let out = Command::new(wrapper)
        .args(["-c", code])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", wrapper.display()));
    assert!(
        out.status.success(),
        "{} -c {code:?} failed:\n{}",
        wrapper.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_fixture_has_a_twin_without_markers_that_runs_alike() {
    assert_eq!(
        fixtures().keys().collect::<Vec<_>>(),
        ["3.11", "3.13", "3.14", "3.15", "3.9"],
        "the fixtures keep only the interpreters with markers"
    );
    for version in fixtures().keys() {
        let original = fixture(version);
        let twin = fixture_without_markers(version);
        assert_eq!(twin.version, *version);
        assert_eq!(
            twin.binary.parent(),
            original.binary.parent(),
            "the twin sits next to its original (and so finds the same stdlib)"
        );
        assert!(
            !readelf_notes(&original.binary).is_empty(),
            "{} has markers",
            original.binary.display()
        );
        let notes = readelf_n(&twin.binary);
        assert!(
            !notes.contains("stapsdt"),
            "{} still has stapsdt notes:\n{notes}",
            twin.binary.display()
        );
        let probe = "import sys; print(sys.version); print(sys.executable)";
        let ran = python(&twin.wrapper, probe);
        let (ran_version, executable) = ran.trim_end().rsplit_once('\n').unwrap();
        let (original_version, _) = python(&original.wrapper, probe)
            .trim_end()
            .rsplit_once('\n')
            .map(|(v, e)| (v.to_string(), e.to_string()))
            .unwrap();
        assert_eq!(ran_version, original_version, "{version}'s twin");
        assert_eq!(Path::new(executable), twin.binary);
    }
}

#[test]
fn pytap_says_a_twin_was_built_without_markers() {
    for (version, full) in [
        ("3.9", "3.9.2"),
        ("3.11", "3.11.2"),
        ("3.13", "3.13.5"),
        ("3.14", "3.14.8"),
        ("3.15", "3.15.0"),
    ] {
        let twin = fixture_without_markers(version);
        let path = twin.binary.to_str().unwrap();
        let run = pytap(&["list", path]);
        let message = run.one_line_error();
        assert!(
            message.starts_with(&format!(
                "pytap: {path} is CPython {full} built without markers (no python entries in .note.stapsdt)"
            )),
            "{message}"
        );
    }
}
