//! `cpython::linetable` against each interpreter's own answer: every code
//! object of a few stdlib modules, every instruction offset, the line
//! `LineTable::line_at` gives equal to the one the interpreter's public API
//! gives (`tests/py/line_oracle.py`), on every Debian fixture and every
//! pyenv build.

use std::path::Path;
use std::process::Command;

use pytap::cpython::linetable::{LineTable, LineTableKind};
use serde_json::Value;

use crate::harness::{fixture, pyenv_python, pyenv_versions, script};

fn hex(text: &str) -> Vec<u8> {
    assert!(
        text.len().is_multiple_of(2),
        "odd hex string from the oracle"
    );
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex from the oracle"))
        .collect()
}

/// Runs the oracle with `python` (which must be 3.`minor`), decodes each
/// code object's table and asserts every offset's line; returns how many
/// code objects and offsets it checked.
#[track_caller]
fn holds(python: &Path, minor: u8) -> (usize, usize) {
    // -B: no .pyc left in the fixtures' standard library, whose presence
    // changes how other tests' processes allocate their code objects.
    let out = Command::new(python)
        .args(["-I", "-B"])
        .arg(script("line_oracle.py"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{} tests/py/line_oracle.py failed:\n{}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("the oracle's JSON");
    let version = json["version"].as_str().unwrap().to_string();
    assert!(
        version.starts_with(&format!("3.{minor}.")),
        "{} is {version}, not 3.{minor}",
        python.display()
    );
    let kind = LineTableKind::for_minor(minor);
    let codes = json["codes"].as_array().unwrap();
    let mut offsets = 0;
    for code in codes {
        let module = code["module"].as_str().unwrap();
        let name = code["name"].as_str().unwrap();
        let first_line = u32::try_from(code["firstlineno"].as_u64().unwrap()).unwrap();
        let code_len = code["code_len"].as_u64().unwrap();
        let expected = code["lines"].as_array().unwrap();
        assert_eq!(
            expected.len() as u64,
            code_len.div_ceil(2),
            "{version} {module}:{name}: the oracle's lines do not cover co_code"
        );
        let table = LineTable::decode(kind, &hex(code["table"].as_str().unwrap()), first_line);
        for (i, want) in expected.iter().enumerate() {
            let offset = 2 * i as i64;
            let want = want.as_u64().map(|l| u32::try_from(l).unwrap());
            assert_eq!(
                table.line_at(offset),
                want,
                "Python {version} ({kind:?}): {module}:{name} (co_firstlineno {first_line}, \
                 table {}) at offset {offset}: pytap's line differs from the interpreter's",
                code["table"].as_str().unwrap()
            );
        }
        offsets += expected.len();
    }
    (codes.len(), offsets)
}

/// Enough code to mean something: the six modules have hundreds of code
/// objects and many thousands of instructions on every version.
#[track_caller]
fn holds_widely(python: &Path, minor: u8) {
    let (codes, offsets) = holds(python, minor);
    assert!(
        codes > 300 && offsets > 15_000,
        "{}: only {codes} code objects, {offsets} offsets",
        python.display()
    );
}

#[test]
fn line_tables_match_debian_3_9() {
    holds_widely(&fixture("3.9").wrapper, 9);
}

#[test]
fn line_tables_match_debian_3_11() {
    holds_widely(&fixture("3.11").wrapper, 11);
}

#[test]
fn line_tables_match_debian_3_13() {
    holds_widely(&fixture("3.13").wrapper, 13);
}

#[test]
fn line_tables_match_debian_3_14() {
    holds_widely(&fixture("3.14").wrapper, 14);
}

#[test]
fn line_tables_match_debian_3_15() {
    holds_widely(&fixture("3.15").wrapper, 15);
}

/// Every pyenv build: 3.8 and 3.10 (and 3.12) exist only there.
#[test]
fn line_tables_match_every_pyenv_build() {
    for version in pyenv_versions() {
        let minor: u8 = version.strip_prefix("3.").unwrap().parse().unwrap();
        holds_widely(&pyenv_python(version), minor);
    }
}
