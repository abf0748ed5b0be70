//! Shared test machinery: the pytap binary, the fixture interpreters, the
//! embedding program, readelf, and guards that never leave a child behind.
//!
//! Every prerequisite is checked where it is used and missing ones panic with
//! the name of the prerequisite and the fix. Nothing here returns early.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pytap binary cargo built for these tests.
pub fn pytap_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pytap"))
}

/// A finished pytap run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "pytap failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Parses stdout as JSON after asserting success.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts pytap failed the way users are promised: exit 2, one line on
    /// stderr starting with `pytap: `, no panic, nothing on stdout. Returns
    /// the message.
    #[track_caller]
    pub fn one_line_error(&self) -> &str {
        assert_eq!(
            self.code, 2,
            "expected exit 2\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "expected one line:\n{}",
            self.stderr
        );
        assert!(self.stderr.starts_with("pytap: "), "{}", self.stderr);
        assert_eq!(self.stdout, "", "stdout should be empty on error");
        self.stderr.trim_end()
    }
}

/// Runs pytap with arguments and waits for it.
pub fn pytap(args: &[&str]) -> Run {
    let out = Command::new(pytap_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pytap");
    Run::from_output(out)
}

/// A fixture interpreter: the wrapper script and the real ELF binary.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// `3.11`.
    pub version: String,
    /// Shell wrapper that runs the interpreter.
    pub wrapper: PathBuf,
    /// The ELF binary that carries the markers.
    pub binary: PathBuf,
}

/// The fixture interpreters, fetched once per test run by the project's own
/// `scripts/fetch-pythons.sh` (idempotent; 0.2 s once cached).
pub fn fixtures() -> &'static BTreeMap<String, Fixture> {
    static FIXTURES: OnceLock<BTreeMap<String, Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let script = root().join("scripts/fetch-pythons.sh");
        let cache = std::env::var_os("PYTAP_PYTHONS").map_or_else(|| root().join("target/pythons"), PathBuf::from);
        let out = Command::new(&script)
            .arg(&cache)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("prerequisite missing: cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "prerequisite missing: {} could not fetch the fixture interpreters (it needs apt-get, dpkg and \
             access to deb.debian.org; see its output above)",
            script.display()
        );
        let mut map = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if let [version, wrapper, binary] = f[..] {
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
            assert!(map.contains_key(v), "fixture interpreter {v} missing from {}", script.display());
        }
        map
    })
}

/// One fixture by version (`"3.15"`).
#[track_caller]
pub fn fixture(version: &str) -> &'static Fixture {
    fixtures()
        .get(version)
        .unwrap_or_else(|| panic!("no fixture {version}"))
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

/// One note as `readelf -n` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadelfNote {
    pub provider: String,
    pub name: String,
    pub location: u64,
    pub base: u64,
    pub semaphore: u64,
    pub args: String,
}

/// The stapsdt notes of a file according to binutils' readelf.
pub fn readelf_notes(path: &Path) -> Vec<ReadelfNote> {
    let out = Command::new("readelf")
        .args(["-n", "--wide"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("prerequisite missing: readelf (apt-get install binutils): {e}")
        });
    assert!(out.status.success(), "readelf failed on {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut notes = Vec::new();
    let mut cur: Option<ReadelfNote> = None;
    for line in text.lines().map(str::trim) {
        let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
        // With --wide, readelf prints the provider at the end of the note's header line.
        if let Some((_, p)) = line.split_once("Provider: ") {
            cur = Some(ReadelfNote {
                provider: p.to_string(),
                name: String::new(),
                location: 0,
                base: 0,
                semaphore: 0,
                args: String::new(),
            });
        } else if let (Some(n), Some(c)) = (line.strip_prefix("Name: "), cur.as_mut()) {
            c.name = n.to_string();
        } else if let (Some(rest), Some(c)) = (line.strip_prefix("Location: "), cur.as_mut()) {
            // Location: 0x..., Base: 0x..., Semaphore: 0x...
            let parts: Vec<&str> = rest.split(", ").collect();
            c.location = hex(parts[0]);
            c.base = hex(parts[1].trim_start_matches("Base: "));
            c.semaphore = hex(parts[2].trim_start_matches("Semaphore: "));
        } else if let (Some(a), Some(c)) = (line.strip_prefix("Arguments: "), cur.as_mut()) {
            c.args = a.to_string();
            notes.push(cur.take().unwrap());
        } else if line == "Arguments:"
            && let Some(mut c) = cur.take()
        {
            c.args.clear();
            notes.push(c);
        }
    }
    notes
}

/// A section's address and file offset according to `readelf -S`.
pub fn readelf_section(path: &Path, name: &str) -> (u64, u64) {
    let out = Command::new("readelf")
        .args(["-S", "--wide"])
        .arg(path)
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.split_once(']').map(|(_, r)| r.trim()) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&name) {
            let h = |s: &str| u64::from_str_radix(s, 16).unwrap();
            return (h(f[2]), h(f[3]));
        }
    }
    panic!("no section {name} in {}", path.display());
}

/// A child process that is killed and reaped when dropped, so a failing
/// test never leaves a Python running.
#[derive(Debug)]
pub struct ChildGuard {
    pub child: Child,
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl ChildGuard {
    /// Spawns `cmd` with piped stdout and stdin.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().map(BufReader::new);
        ChildGuard { child, stdout }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout lines until one equals `want`; panics after `timeout`.
    #[track_caller]
    pub fn wait_for_line(&mut self, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let reader = self.stdout.as_mut().expect("stdout piped");
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => panic!("child exited before printing {want:?}"),
                Ok(_) if line.trim_end() == want => return,
                Ok(_) => {}
                Err(e) => panic!("reading child stdout: {e}"),
            }
        }
        panic!("child did not print {want:?} within {timeout:?}");
    }

    /// Writes `line` and a newline to the child's stdin (a waiting script's go).
    #[track_caller]
    pub fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin piped");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to the child's stdin");
    }

    /// Closes stdin and waits for the exit status; returns the rest of stdout.
    pub fn finish(mut self) -> (i32, String) {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut rest);
        }
        let status = self.child.wait().expect("wait");
        (status.code().unwrap_or(-1), rest)
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `python` running `code` after printing `ready`, then blocking on
/// stdin until the guard closes it.
pub fn spawn_waiting_python(python: &Path, code: &str) -> ChildGuard {
    let script = format!("{code}\nimport sys\nprint('ready', flush=True)\nsys.stdin.read()\n");
    let mut guard = ChildGuard::spawn(Command::new(python).args(["-c", &script]));
    guard.wait_for_line("ready", Duration::from_secs(20));
    guard
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

/// A detached tmux session running one shell command in a terminal of a
/// known size; killed when dropped. For the tests of what pytap does in a
/// real terminal (live view, terminal loss, width).
#[derive(Debug)]
pub struct Tmux {
    session: String,
}

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("prerequisite missing: tmux (apt-get install tmux): {e}"))
}

impl Tmux {
    /// Starts `sh -c command` in a `cols` x `rows` terminal.
    pub fn start(name: &str, cols: u16, rows: u16, command: &str) -> Tmux {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("pytap-{name}-{}-{n}", std::process::id());
        let out = tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            "sh",
            "-c",
            command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmux { session }
    }

    /// What the terminal shows now.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.session]).stdout)
            .into_owned()
    }

    /// Everything the terminal showed, scrollback included.
    pub fn history(&self) -> String {
        String::from_utf8_lossy(
            &tmux(&["capture-pane", "-p", "-S", "-10000", "-t", &self.session]).stdout,
        )
        .into_owned()
    }

    /// Everything the terminal showed, with lines the terminal wrapped
    /// joined back (so a line wider than the terminal shows as one).
    pub fn history_joined(&self) -> String {
        String::from_utf8_lossy(
            &tmux(&[
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-10000",
                "-t",
                &self.session,
            ])
            .stdout,
        )
        .into_owned()
    }

    /// Types keys.
    pub fn send(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.session, keys]);
    }

    /// Waits until the screen satisfies `ok`; panics with the screen after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes the terminal, as closing a terminal window does.
    pub fn kill(&self) {
        tmux(&["kill-session", "-t", &self.session]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `ok` holds; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// The pids of the processes whose command line contains `needle`.
pub fn pids_running(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The sites of these markers in a running process, as `pytap list -p`
/// shows them: (marker, probe address, live semaphore value).
pub fn sites_named(pid: u32, names: &[&str]) -> Vec<(String, u64, u64)> {
    let json = pytap(&["list", "--json", "-p", &pid.to_string()]).json();
    json["modules"][0]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| names.contains(&n)))
        .map(|s: &serde_json::Value| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["pc"].as_u64().unwrap(),
                s["semaphore"]["value"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The byte at `address` in the process: 0x90 for a marker's nop, 0xcc
/// while a uprobe sits on it.
pub fn byte_at(pid: u32, address: u64) -> u8 {
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, address).unwrap();
    b[0]
}

/// Whether every marker site of a process has its semaphore at 0 and its
/// original instruction back: nothing of pytap's is left in it.
pub fn nothing_armed(pid: u32) -> bool {
    let json = pytap(&["list", "--json", "-p", &pid.to_string()]).json();
    json["modules"][0]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| {
            s["semaphore"]["value"].as_u64().unwrap_or(0) == 0
                && byte_at(pid, s["pc"].as_u64().unwrap()) == 0x90
        })
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
