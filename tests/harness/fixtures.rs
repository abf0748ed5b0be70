//! What the tests run on: the fixture interpreters, Debian's own Python,
//! the embedding program, the test scripts, and the kernel prerequisites.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::root;

/// A fixture interpreter: the wrapper script and the real ELF binary.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// `3.11`.
    pub version: String,
    /// Shell wrapper that runs the interpreter.
    pub wrapper: PathBuf,
    /// The ELF binary: the one that carries the markers (attach here), or
    /// for a twin without markers, the one without.
    pub binary: PathBuf,
}

/// What `scripts/fetch-pythons.sh` made: the fixtures, and their twins
/// without markers.
struct Fetched {
    with_markers: BTreeMap<String, Fixture>,
    without_markers: BTreeMap<String, Fixture>,
}

/// The fixture interpreters, fetched once per test run by the project's own
/// `scripts/fetch-pythons.sh` (idempotent; 0.2 s once cached).
fn fetched() -> &'static Fetched {
    static FETCHED: OnceLock<Fetched> = OnceLock::new();
    FETCHED.get_or_init(|| {
        let script = root().join("scripts/fetch-pythons.sh");
        let cache = std::env::var_os("PYTAP_PYTHONS").map_or_else(|| root().join("target/pythons"), PathBuf::from);
        let out = Command::new(&script)
            .arg(&cache)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("prerequisite missing: cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "prerequisite missing: {} could not fetch the fixture interpreters (it needs apt-get, dpkg, \
             objcopy and access to deb.debian.org; see its output above)",
            script.display()
        );
        let mut fetched = Fetched {
            with_markers: BTreeMap::new(),
            without_markers: BTreeMap::new(),
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if let [version, wrapper, binary] = f[..] {
                // A twin's line says `3.11-nomarkers`; it is kept apart so
                // that `fixtures()` stays the interpreters with markers.
                let (map, version) = match version.strip_suffix("-nomarkers") {
                    Some(v) => (&mut fetched.without_markers, v),
                    None => (&mut fetched.with_markers, version),
                };
                map.insert(
                    version.to_string(),
                    Fixture {
                        version: version.to_string(),
                        wrapper: wrapper.into(),
                        binary: binary.into(),
                    },
                );
            }
        }
        for v in ["3.9", "3.11", "3.13", "3.14", "3.15"] {
            assert!(fetched.with_markers.contains_key(v), "fixture interpreter {v} missing from {}", script.display());
            assert!(
                fetched.without_markers.contains_key(v),
                "the marker-less twin of fixture {v} missing from {}",
                script.display()
            );
        }
        fetched
    })
}

/// The fixture interpreters (with their markers), by version.
pub fn fixtures() -> &'static BTreeMap<String, Fixture> {
    &fetched().with_markers
}

/// One fixture by version (`"3.15"`).
#[track_caller]
pub fn fixture(version: &str) -> &'static Fixture {
    fixtures()
        .get(version)
        .unwrap_or_else(|| panic!("no fixture {version}"))
}

/// The marker-less twin of a fixture (`"3.11"`): the same Debian binary
/// with `.note.stapsdt` removed, next to it (it runs the same stdlib), as
/// pytap sees a Python built without `--with-dtrace`. Its `binary` carries
/// no markers.
#[track_caller]
pub fn fixture_without_markers(version: &str) -> &'static Fixture {
    fetched()
        .without_markers
        .get(version)
        .unwrap_or_else(|| panic!("no marker-less twin of fixture {version}"))
}

/// Every marker-less twin, by version.
pub fn fixtures_without_markers() -> &'static BTreeMap<String, Fixture> {
    &fetched().without_markers
}

/// The pyenv builds the tests run on (shared libpython, no markers, with
/// DWARF: `scripts/layouts.py` reads their struct layouts).
pub fn pyenv_versions() -> &'static [&'static str] {
    &["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
}

/// The interpreter of pyenv's build of `version` (`"3.8"`):
/// `$PYENV_ROOT/versions/3.8.*/bin/python3.8` (PYENV_ROOT defaults to
/// `~/.pyenv`), the newest patch release if there are several.
#[track_caller]
pub fn pyenv_python(version: &str) -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".pyenv"),
        PathBuf::from,
    );
    let versions = root.join("versions");
    let prefix = format!("{version}.");
    // Plain releases only (`3.8.18`, not `3.8-dev` or a free-threaded `3.13.0t`).
    let newest = std::fs::read_dir(&versions)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let patch: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((patch, name))
        })
        .filter(|(_, name)| {
            versions
                .join(name)
                .join(format!("bin/python{version}"))
                .is_file()
        })
        .max();
    match newest {
        Some((_, name)) => versions.join(name).join(format!("bin/python{version}")),
        None => panic!(
            "prerequisite missing: pyenv build of {version} not found under {} \
             (as {version}.N/bin/python{version}); this machine kind's image has them",
            versions.display()
        ),
    }
}

/// Debian's own interpreter, in the base image.
#[track_caller]
pub fn system_python() -> PathBuf {
    let p = PathBuf::from("/usr/bin/python3.11");
    assert!(
        p.is_file(),
        "prerequisite missing: /usr/bin/python3.11 (apt-get install python3.11-minimal)"
    );
    p
}

/// Debian's libpython3.11, in the base image.
#[track_caller]
pub fn system_libpython() -> PathBuf {
    let p = PathBuf::from("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0");
    assert!(
        p.is_file(),
        "prerequisite missing: {} (apt-get install libpython3.11)",
        p.display()
    );
    p
}

/// The patchelf the fixture script unpacked.
pub fn patchelf() -> PathBuf {
    let _ = fixtures();
    let cache = std::env::var_os("PYTAP_PYTHONS")
        .map_or_else(|| root().join("target/pythons"), PathBuf::from);
    let p = cache.join(".tools/patchelf/usr/bin/patchelf");
    assert!(
        p.is_file(),
        "prerequisite missing: {} (scripts/fetch-pythons.sh unpacks it)",
        p.display()
    );
    p
}

/// A scratch directory for one test, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The embedding program (tests/c/embed.c) built against Debian's
/// libpython3.11, once per run.
pub fn embed_program() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let config = Path::new("/usr/bin/python3.11-config");
        assert!(
            config.is_file(),
            "prerequisite missing: /usr/bin/python3.11-config (apt-get install libpython3.11-dev)"
        );
        let flags = |args: &[&str]| -> Vec<String> {
            let out = Command::new(config)
                .args(args)
                .output()
                .expect("python3.11-config");
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        let dir = root().join("target/test-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("embed-python3.11");
        let out = Command::new("cc")
            .arg("-o")
            .arg(&bin)
            .arg(root().join("tests/c/embed.c"))
            .args(flags(&["--cflags", "--embed"]))
            .args(flags(&["--ldflags", "--embed"]))
            .output()
            .unwrap_or_else(|e| {
                panic!("prerequisite missing: a C compiler `cc` (apt-get install gcc): {e}")
            });
        assert!(
            out.status.success(),
            "building tests/c/embed.c failed (needs gcc and libpython3.11-dev):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

/// Root and the kernel interfaces pytap's live tests need. Panics naming
/// whatever is missing; it never lets a test pass without running.
pub fn require_kernel() {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "prerequisite missing: kernel tests run as root (BPF, uprobes, /proc/PID/mem); \
         run `sudo cargo test`, or leave them out explicitly with `cargo test -- --skip kernel::`"
    );
    for path in [
        "/sys/bus/event_source/devices/uprobe/type",
        "/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset",
    ] {
        assert!(
            Path::new(path).exists(),
            "prerequisite missing: {path} (a kernel with CONFIG_UPROBES and uprobe ref_ctr_offset, Linux 4.20+)"
        );
    }
}

/// A Python with Perfetto's own protobuf definitions (the `perfetto`
/// package from PyPI), in `target/export-venv`, made once per machine, to
/// run `tests/py/check_export.py`.
pub fn export_checker() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = root().join("target/export-venv");
        let python = venv.join("bin/python");
        let ready = |p: &Path| {
            Command::new(p)
                .args([
                    "-c",
                    "import perfetto.protos.perfetto.trace.perfetto_trace_pb2",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ready(&python) {
            let made = Command::new(system_python())
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "perfetto==0.59.1"])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                made && ready(&python),
                "prerequisite missing: Perfetto's protobuf definitions: could not make {} \
                 (python3.11 -m venv, then pip install perfetto; needs python3.11-venv and PyPI)",
                venv.display()
            );
        }
        python
    })
}

/// Debian's headless Chromium, to open exported SVG flame graphs.
pub fn chromium() -> PathBuf {
    let p = PathBuf::from("/usr/bin/chromium");
    assert!(
        p.is_file(),
        "prerequisite missing: /usr/bin/chromium (apt-get install chromium), to render flame graphs"
    );
    p
}

/// A script of tests/py.
pub fn script(name: &str) -> String {
    root().join("tests/py").join(name).display().to_string()
}

/// A script of tests/scripts/howto (the HOWTO's SystemTap and DTrace
/// scripts, unmodified).
pub fn howto(name: &str) -> String {
    root()
        .join("tests/scripts/howto")
        .join(name)
        .display()
        .to_string()
}

/// Writes `many.d` into `dir`: 3000 clauses on function-entry for `fib`,
/// the first zeroing a thread variable, 2998 counting (it and `@c`), the
/// last keying `@seen` by what the others counted; returns its path.
pub fn many_clauses_d(dir: &Path) -> PathBuf {
    let d = dir.join("many.d");
    let mut text = String::from(
        "python$target:::function-entry /copyinstr(arg1) == \"fib\"/ { self->n = 0; }\n",
    );
    for _ in 0..2998 {
        text.push_str("python$target:::function-entry /copyinstr(arg1) == \"fib\"/ { self->n++; @c = count(); }\n");
    }
    text.push_str("python$target:::function-entry /copyinstr(arg1) == \"fib\"/ { @seen[self->n] = count(); }\n");
    std::fs::write(&d, text).unwrap();
    d
}
