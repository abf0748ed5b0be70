//! The in-process capture: function events where the markers are gone
//! (CPython 3.12–3.14), from a `sys.monitoring` tool that pytap's agent
//! registers inside the traced interpreter.
//!
//! For a launched command pytap makes a directory, writes the agent there
//! as `sitecustomize.py` and puts the directory first on the command's
//! `PYTHONPATH` ([`Capture::launch_env`]). Every interpreter of 3.12 or
//! later in the tree then writes its events to `PID.ring` in that
//! directory ([`ring`] has the layout), and pytap reads them as the BPF
//! ring's records are read, turning each into the same [`Event`] a marker
//! would have given, so the tools do not know where an event came from
//! (except by [`abi::FLAG_IN_PROCESS`](crate::engine::abi::FLAG_IN_PROCESS)). pytap keeps a heartbeat in each ring:
//! an agent whose pytap is gone detaches within a second of its next
//! calls. Reading uses `pread`/`pwrite` on the ring file: no mapping, no
//! `unsafe`.

mod reader;
pub mod remote;
pub mod ring;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cpython::Marker;
use crate::engine::decode::Event;
use crate::notice;
use reader::{ReadError, Ring};
use ring::AgentState;

/// The agent, as pytap writes it into the capture directory.
pub const AGENT: &str = include_str!("agent.py");

/// The agent's compiled callbacks (`crates/agent-ext`, built by the build
/// script): a CPython extension module on the stable ABI, written next to
/// the agent, which falls back to its Python callbacks without it.
pub const EXTENSION: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/_pytap_agent.abi3.so"));

/// The extension's file name in the capture directory.
const EXTENSION_NAME: &str = "_pytap_agent.abi3.so";

/// How long a process attached to (PEP 768) may take to run the agent
/// before pytap says why it waits.
const ATTACH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Ring size the agents are asked for (bytes of records per process).
pub const DEFAULT_RING_BYTES: u64 = 16 << 20;

/// The capture directory of a run and the rings found in it.
#[derive(Debug)]
pub struct Capture {
    dir: PathBuf,
    ring_bytes: u64,
    rings: BTreeMap<PathBuf, Ring>,
    /// Files that are not rings (said once).
    refused: Vec<PathBuf>,
    /// `PID.error` files already reported.
    errors_seen: Vec<PathBuf>,
    buf: Vec<u8>,
    /// Processes asked to run the agent, and since when (said once when
    /// one takes long: a thread blocked in C runs it when back in Python).
    expected: Vec<Expected>,
    /// Events read.
    pub events_read: u64,
}

impl Capture {
    /// Makes the directory and writes the agent into it.
    pub fn create() -> Result<Capture> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        remove_stale(&base);
        let dir = base.join(format!("{DIR_PREFIX}{}", std::process::id()));
        // A directory left by a pytap that had this pid and was killed.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Traced processes that change user still write their rings here.
        set_mode(&dir, 0o1777)?;
        let agent = dir.join("sitecustomize.py");
        std::fs::write(&agent, AGENT).with_context(|| format!("writing {}", agent.display()))?;
        set_mode(&agent, 0o644)?;
        let ext = dir.join(EXTENSION_NAME);
        std::fs::write(&ext, EXTENSION).with_context(|| format!("writing {}", ext.display()))?;
        set_mode(&ext, 0o755)?;
        Ok(Capture {
            dir,
            ring_bytes: DEFAULT_RING_BYTES,
            rings: BTreeMap::new(),
            refused: Vec::new(),
            errors_seen: Vec::new(),
            buf: Vec::new(),
            expected: Vec::new(),
            events_read: 0,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The variables a launched command gets: the agent first on its
    /// `PYTHONPATH`, the program's own `PYTHONPATH` kept for the agent to
    /// restore, and where to write (what to give comes in each process's
    /// `PID.serve`).
    pub fn launch_env(&self) -> Vec<(OsString, OsString)> {
        let mut path = self.dir.as_os_str().to_owned();
        let mut env = vec![
            ("PYTAP_CAPTURE_DIR".into(), self.dir.as_os_str().to_owned()),
            (
                "PYTAP_CAPTURE_BYTES".into(),
                self.ring_bytes.to_string().into(),
            ),
        ];
        if let Some(own) = std::env::var_os("PYTHONPATH") {
            if !own.is_empty() {
                path.push(":");
                path.push(&own);
            }
            env.push(("PYTAP_CAPTURE_PYTHONPATH".into(), own));
        }
        env.push(("PYTHONPATH".into(), path));
        env
    }

    /// Loads the agent into running process `pid` (CPython 3.14, through
    /// PEP 768) to give the events of `markers`: writes it, with this
    /// capture's settings, as a file the process can read, and asks the
    /// interpreter to run it.
    pub fn attach(
        &mut self,
        pid: u32,
        module: &crate::process::module::Module,
        markers: &std::collections::BTreeSet<Marker>,
    ) -> Result<()> {
        let same_root = |a: &str, b: &str| {
            use std::os::unix::fs::MetadataExt;
            match (std::fs::metadata(a), std::fs::metadata(b)) {
                (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
                _ => false,
            }
        };
        if !same_root(&format!("/proc/{pid}/root"), "/proc/self/root") {
            anyhow::bail!(
                "pid {pid} runs in another mount namespace: loading pytap's agent there is not supported yet"
            );
        }
        let script = self.dir.join(format!("attach-{pid}.py"));
        let settings = format!(
            "_PYTAP_ATTACH = {{\"PYTAP_CAPTURE_DIR\": {dir:?}, \"PYTAP_CAPTURE_BYTES\": \"{bytes}\", \
             \"PYTAP_CAPTURE_EVENTS\": \"{events}\", \
             \"script\": {script:?}}}\n",
            dir = self.dir.display().to_string(),
            bytes = self.ring_bytes,
            events = crate::engine::capture_mode::agent_events(markers),
            script = script.display().to_string(),
        );
        std::fs::write(&script, format!("{settings}{AGENT}"))
            .with_context(|| format!("writing {}", script.display()))?;
        set_mode(&script, 0o644)?;
        let call = remote::send(pid, module, &script)?;
        self.expected.push(Expected {
            call,
            since: std::time::Instant::now(),
            told: false,
        });
        Ok(())
    }

    /// Events the agents dropped.
    pub fn lost(&self) -> u64 {
        self.rings.values().map(|r| r.lost).sum()
    }

    /// Processes that wrote a ring.
    pub fn processes(&self) -> usize {
        self.rings.len()
    }

    /// Reads every ring's new records and hands each event to `each`;
    /// keeps the heartbeat. Returns how many events it read.
    pub fn drain(&mut self, each: &mut dyn FnMut(&Event<'_>) -> Result<()>) -> Result<u64> {
        self.drain_until(u64::MAX, each)
    }

    /// [`Capture::drain`], up to the first event stamped after `until` in
    /// each ring (read at the next drain).
    pub fn drain_until(
        &mut self,
        until: u64,
        each: &mut dyn FnMut(&Event<'_>) -> Result<()>,
    ) -> Result<u64> {
        self.scan();
        let rings: Vec<u32> = self.rings.values().map(|r| r.pid).collect();
        for e in &mut self.expected {
            if e.told || rings.contains(&e.call.pid) || e.since.elapsed() < ATTACH_PATIENCE {
                continue;
            }
            // Said once; the call stays pending (withdrawn if pytap ends
            // before the process takes it).
            e.told = true;
            let call = e.call;
            let why = if crate::process::proc::is_stopped(call.pid) {
                "it is stopped (by a signal or a debugger); it runs the agent when it continues"
            } else {
                "its main thread has not run Python code since (blocked in C code, it runs the \
                 agent when it returns to Python)"
            };
            notice!(
                "pid {} has not run pytap's agent after {} s: {why}; its function events start then",
                call.pid,
                ATTACH_PATIENCE.as_secs()
            );
        }
        self.expected.retain(|e| !rings.contains(&e.call.pid));
        let mut total = 0;
        for (path, ring) in &mut self.rings {
            if ring.broken {
                continue;
            }
            match ring.read(&mut self.buf, until, each) {
                Ok(n) => total += n,
                Err(ReadError::Consumer(e)) => return Err(e),
                Err(ReadError::Ring(why)) => {
                    ring.broken = true;
                    notice!(
                        "in-process capture of pid {}: {} ({}); its later events are not read",
                        ring.pid,
                        why,
                        path.display()
                    );
                }
            }
        }
        self.events_read += total;
        Ok(total)
    }

    /// Looks for new rings and for agents' error reports.
    fn scan(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".error") && !self.errors_seen.contains(&path) {
                self.errors_seen.push(path.clone());
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                notice!(
                    "in-process capture of pid {}: the agent stopped: {}",
                    name.trim_end_matches(".error"),
                    text.trim()
                );
                continue;
            }
            if !name.ends_with(".ring")
                || self.rings.contains_key(&path)
                || self.refused.contains(&path)
            {
                continue;
            }
            match Ring::open(&path) {
                Ok(Some(ring)) => {
                    self.rings.insert(path, ring);
                }
                // Still being made by its agent: next time.
                Ok(None) => {}
                Err(why) => {
                    notice!("{}: {why}; not read", path.display());
                    self.refused.push(path);
                }
            }
        }
    }

    /// Tells every agent pytap is gone (they detach at their next check).
    pub fn say_gone(&mut self) {
        for ring in self.rings.values_mut() {
            let _ = ring
                .file
                .write_at(&ring::BEAT_GONE.to_le_bytes(), ring::BEAT);
        }
    }

    /// Agents that stopped for want of a free `sys.monitoring` tool id.
    pub fn without_tool(&self) -> Vec<u32> {
        self.rings
            .values()
            .filter(|r| r.state == AgentState::NoTool)
            .map(|r| r.pid)
            .collect()
    }
}

/// An agent asked to load into a running process (PEP 768) whose ring has
/// not appeared yet.
#[derive(Debug)]
struct Expected {
    call: remote::PendingCall,
    since: std::time::Instant,
    /// Whether the user was told it is late.
    told: bool,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.say_gone();
        // An agent a process has not run yet must not run after pytap:
        // its request is withdrawn. One taken in the meantime runs, finds
        // pytap gone, and leaves quietly.
        for e in self.expected.drain(..) {
            remote::withdraw(e.call);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The interpreter option among `-I`, `-E` and `-S` that keeps the agent
/// from loading (`-I` and `-E` ignore `PYTHONPATH`, `-S` skips `site`,
/// which imports `sitecustomize`), in a command line (`argv`, NUL-separated
/// as `/proc/PID/cmdline` has it).
pub fn option_refusing_agent(cmdline: &[u8]) -> Option<char> {
    let mut args = cmdline.split(|&b| b == 0).skip(1);
    while let Some(arg) = args.next() {
        if arg == b"--" || arg == b"-" || !arg.starts_with(b"-") {
            return None;
        }
        let flags = &arg[1..];
        for (i, &f) in flags.iter().enumerate() {
            match f {
                b'I' | b'E' | b'S' => return Some(f as char),
                // The rest is the program: the interpreter's options end.
                b'c' | b'm' => return None,
                // `-W arg`, `-X arg`: attached, or the next word.
                b'W' | b'X' => {
                    if i + 1 == flags.len() {
                        args.next();
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    None
}

/// What capture directories are called, before pytap's pid.
const DIR_PREFIX: &str = "pytap-capture-";

/// Removes the capture directories of pytaps that are gone (killed before
/// they could, and whose agents had nothing left to notice it with).
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::capture_mode::CaptureMode;

    #[test]
    fn options_that_keep_the_agent_out_are_found() {
        let cmd = |args: &[&str]| args.join("\0").into_bytes();
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "-I", "app.py"])),
            Some('I')
        );
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "-bES", "app.py"])),
            Some('E')
        );
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "-u", "-S", "-c", "x"])),
            Some('S')
        );
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "app.py", "-I"])),
            None
        );
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "-c", "-I"])),
            None
        );
        assert_eq!(option_refusing_agent(&cmd(&["python3.13", "-cI"])), None);
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "-m", "mod", "-E"])),
            None
        );
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "-Xdev", "-E", "a.py"])),
            Some('E')
        );
        assert_eq!(
            option_refusing_agent(&cmd(&["python3.13", "-X", "dev", "-I"])),
            Some('I')
        );
        assert_eq!(option_refusing_agent(&cmd(&["python3.13"])), None);
    }

    #[test]
    fn each_interpreter_is_served_by_what_it_offers() {
        use crate::engine::capture_mode::Offer;
        let marked = |minor| Offer {
            version: (3, minor),
            function_markers: !(12..15).contains(&minor),
            markers: true,
        };
        let unmarked = |minor| Offer {
            version: (3, minor),
            function_markers: false,
            markers: false,
        };
        // By default, launched: the cheapest exact path (the agent on 3.11
        // too, whose markers need tracing armed); attached: the markers
        // where they are.
        assert!(CaptureMode::Auto.serves(marked(11)));
        assert!(!CaptureMode::Auto.serves(marked(10)));
        assert!(!CaptureMode::Attached.serves(marked(11)));
        assert!(CaptureMode::Attached.serves(marked(13)));
        assert!(!CaptureMode::Attached.serves(marked(15)));
        assert!(!CaptureMode::Auto.serves(marked(10)));
        assert!(!CaptureMode::Attached.serves(marked(11)));
        assert!(CaptureMode::Attached.serves(marked(13)));
        assert!(!CaptureMode::Attached.serves(marked(15)));
        assert!(CaptureMode::Auto.serves(marked(12)));
        assert!(CaptureMode::Auto.serves(marked(14)));
        assert!(!CaptureMode::Auto.serves(marked(15)));
        for minor in 8..=15 {
            assert!(CaptureMode::Auto.serves(unmarked(minor)), "3.{minor}");
            assert!(CaptureMode::Attached.serves(unmarked(minor)), "3.{minor}");
            assert!(CaptureMode::InProcess.serves(unmarked(minor)), "3.{minor}");
            assert!(!CaptureMode::Markers.serves(unmarked(minor)), "3.{minor}");
        }
        assert!(!CaptureMode::Auto.serves(unmarked(7)));
        assert!(CaptureMode::InProcess.serves(marked(15)));
        assert!(CaptureMode::InProcess.serves(marked(11)));
        assert!(CaptureMode::InProcess.serves(marked(9)));
        assert!(!CaptureMode::InProcess.serves(marked(7)));
        assert!(!CaptureMode::Markers.serves(marked(13)));
        // gc, imports and audit: the agent only where the build has no
        // markers at all (3.12-3.14 keep these).
        for marker in [Marker::GcStart, Marker::ImportFindLoadDone, Marker::Audit] {
            for minor in 8..=15 {
                assert!(!CaptureMode::Auto.serves_marker(marked(minor), marker));
                assert!(!CaptureMode::InProcess.serves_marker(marked(minor), marker));
                assert!(CaptureMode::Auto.serves_marker(unmarked(minor), marker));
                assert!(!CaptureMode::Markers.serves_marker(unmarked(minor), marker));
            }
            assert!(!CaptureMode::Auto.serves_marker(unmarked(7), marker));
        }
        assert!(CaptureMode::Auto.serves_marker(marked(13), Marker::FunctionEntry));
    }

    #[test]
    fn the_agent_is_told_its_events_by_the_names_it_knows() {
        use crate::engine::capture_mode::agent_events;
        let all: std::collections::BTreeSet<Marker> = Marker::ALL.into_iter().collect();
        let names = agent_events(&all);
        assert_eq!(
            names,
            "entry,return,line,gc_start,gc_done,import_start,import_done,audit"
        );
        // agent.py's `_EVENTS` lists the same names.
        let line = AGENT
            .lines()
            .position(|l| l.starts_with("_EVENTS = ("))
            .expect("agent.py has _EVENTS");
        let text: String = AGENT.lines().skip(line).take(2).collect();
        for name in names.split(',') {
            assert!(text.contains(&format!("\"{name}\"")), "{name} in {text}");
        }
    }
}
