//! `--dump-bpf` of every tool on 3.9, 3.11 and 3.15, byte for byte against
//! goldens in `tests/golden/dump-bpf/`: code-generation refactors are
//! checked by `cargo test`, not by hand. Loads nothing, needs no root.
//!
//! A golden holds what is generated for one fixture build on a machine of
//! this kind; its header names both (the fixture's GNU build ID, the number
//! of possible CPUs, which sizes the per-CPU rings). When either differs the
//! test fails and says so: a new Debian upload of a fixture changes marker
//! sites and registers, and then the goldens are made again, on a commit
//! whose code generation is trusted, with `PYTAP_BLESS=1 cargo test dump_bpf`.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{fixture, pytap, root};

/// Every tool and the options that change what it generates. `{script}`
/// arguments name files in `tests/scripts/howto/`.
const CASES: &[(&str, &[&str])] = &[
    ("trace", &["trace"]),
    ("trace-some", &["trace", "-m", "gc__start", "-m", "audit"]),
    ("trace-stacks", &["trace", "--format", "jsonl", "--stacks"]),
    ("trace-empty-probe", &["trace", "--empty-probe"]),
    ("flow", &["flow"]),
    (
        "flow-within",
        &["flow", "--within", "main", "--max-depth", "3"],
    ),
    ("top", &["top"]),
    ("calls", &["calls"]),
    ("calls-hist", &["calls", "--hist", "--by-pid"]),
    ("gc", &["gc"]),
    ("imports", &["imports"]),
    ("audit", &["audit"]),
    ("record", &["record", "-o", "/dev/null"]),
    (
        "stap-show-call-hierarchy",
        &["stap", "{show-call-hierarchy.stp}"],
    ),
    ("stap-top", &["stap", "{top.stp}"]),
    (
        "stap-raw-markers",
        &["stap", "--raw-markers", "{show-call-hierarchy.stp}"],
    ),
    (
        "stap-tapset-call-hierarchy",
        &["stap", "-I", "{}", "{tapset-call-hierarchy.stp}"],
    ),
    ("dtrace-call-stack", &["dtrace", "-s", "{call_stack.d}"]),
];

const VERSIONS: [&str; 3] = ["3.9", "3.11", "3.15"];

fn golden_dir() -> PathBuf {
    root().join("tests/golden/dump-bpf")
}

/// The GNU build ID of an ELF file, from readelf.
fn build_id(path: &std::path::Path) -> String {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(path)
        .output()
        .expect("readelf (binutils) is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{}: no build ID", path.display()))
        .to_string()
}

fn possible_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .expect("/sys/devices/system/cpu/possible")
        .trim()
        .to_string()
}

/// What `--dump-bpf` prints for one case, with the machine's paths
/// replaced by placeholders.
fn dump(version: &str, args: &[&str]) -> String {
    let fx = fixture(version);
    let howto = root().join("tests/scripts/howto");
    let args: Vec<String> = args
        .iter()
        .map(
            |a| match a.strip_prefix('{').and_then(|a| a.strip_suffix('}')) {
                Some(name) => howto.join(name).display().to_string(),
                None => a.to_string(),
            },
        )
        .collect();
    let python = fx.binary.display().to_string();
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let script = matches!(argv[0], "stap" | "dtrace");
    argv.extend(["--buffer-size", "8", "--dump-bpf"]);
    let command = format!("{python} -c pass");
    if script {
        argv.extend(["-c", &command]);
    } else {
        argv.extend(["--", &python, "-c", "pass"]);
    }
    let run = pytap(&argv);
    run.ok()
        .replace(&python, "<PYTHON>")
        .replace(&howto.display().to_string(), "<HOWTO>")
}

#[test]
fn dump_bpf_of_every_tool_is_what_its_golden_says() {
    let bless = std::env::var_os("PYTAP_BLESS").is_some();
    let cpus = possible_cpus();
    let mut differ = Vec::new();
    for version in VERSIONS {
        let id = build_id(&fixture(version).binary);
        let dir = golden_dir().join(version);
        let header = format!("# fixture {version} build-id {id}, possible CPUs {cpus}\n");
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, args) in CASES {
            let text = format!("{header}{}", dump(version, args));
            let path = dir.join(format!("{name}.txt"));
            if bless {
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let golden = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (make it with PYTAP_BLESS=1)", path.display()));
            let (golden_header, golden_body) = golden.split_at(golden.find('\n').unwrap() + 1);
            assert_eq!(
                golden_header,
                header,
                "{}: made for another fixture build or CPU count; if the fixture was \
                 updated, make the goldens again with PYTAP_BLESS=1 on a commit whose \
                 code generation is trusted",
                path.display()
            );
            if golden_body != &text[header.len()..] {
                differ.push(format!("{version} {name}"));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "--dump-bpf differs from its golden for: {} (diff the files in {} against \
         a PYTAP_BLESS=1 run to see how)",
        differ.join(", "),
        golden_dir().display()
    );
}
