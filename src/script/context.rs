//! What a script's bodies see of the world when pytap runs them: the
//! context of a kernel probe's record (its process, thread, CPU and time,
//! the thread's name then), pytap's own for `begin`, `end` and timers, and
//! where output goes.

use std::io::Write;

use pytap_script::interp::{Context, Output, ProbeInfo};

use crate::engine::session::Session;

/// Where a body's output goes.
pub(super) struct Out<'a> {
    pub(super) out: &'a mut dyn Write,
    pub(super) error: &'a mut Option<std::io::Error>,
    /// A header still to write before the first output (D's when not quiet).
    pub(super) header: &'a mut Option<&'static str>,
}

impl Output for Out<'_> {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.error.is_some() {
            return;
        }
        let result = match self.header.take() {
            Some(header) => self
                .out
                .write_all(header.as_bytes())
                .and_then(|()| self.out.write_all(bytes)),
            None => self.out.write_all(bytes),
        };
        if let Err(e) = result {
            *self.error = Some(e);
        }
    }

    fn warn(&mut self, message: &str) {
        crate::output::notice::raw(&format!("WARNING: {message}\n"));
    }
}

/// `begin`, `end` and timers run in pytap's own process.
pub(super) struct OwnContext {
    pub(super) target: i64,
}

impl Context for OwnContext {
    fn pid(&self) -> i64 {
        i64::from(std::process::id())
    }
    fn tid(&self) -> i64 {
        i64::from(std::process::id())
    }
    fn ppid(&self) -> i64 {
        std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
    fn uid(&self) -> i64 {
        crate::process::proc::effective_uid().map_or(0, i64::from)
    }
    fn cpu(&self) -> i64 {
        0
    }
    fn execname(&self) -> Vec<u8> {
        b"pytap".to_vec()
    }
    fn target(&self) -> i64 {
        self.target
    }
    fn now_ns(&self) -> i64 {
        pytap_sys::clock::realtime_ns().unwrap_or(0)
    }
    fn monotonic_ns(&self) -> i64 {
        pytap_sys::clock::monotonic_ns().unwrap_or(0)
    }
    fn arg(&self, _: usize) -> i64 {
        0
    }
    fn frame(&self) -> i64 {
        0
    }
    fn user_string(&mut self, addr: i64, _: Option<usize>) -> Result<Vec<u8>, String> {
        Err(format!(
            "{addr:#x}: begin, end and timer probes have no traced process to read"
        ))
    }
}

/// A function marker's arguments as pytap has them whole: an in-process
/// event's strings (with the "addresses" `$arg1`/`$arg2` give them) and
/// its line.
pub(super) struct MarkerArgs<'s> {
    pub(super) filename: (&'s [u8], u64),
    pub(super) funcname: (&'s [u8], u64),
    pub(super) lineno: i64,
}

/// The context of a probe's firing that pytap evaluates: a kernel probe's
/// record, or an in-process event (then with its marker's arguments).
pub(super) struct RecordContext<'s> {
    /// The site that fired, when the program prints its names.
    pub(super) probe: ProbeInfo,
    /// The marker's arguments, for an in-process event.
    pub(super) marker: Option<MarkerArgs<'s>>,
    pub(super) pid: u32,
    pub(super) tid: u32,
    pub(super) cpu: u16,
    pub(super) now_ns: i64,
    /// The event's monotonic time (D's `timestamp`).
    pub(super) monotonic_ns: i64,
    pub(super) target: i64,
    pub(super) session: &'s Session,
}

impl Context for RecordContext<'_> {
    fn pid(&self) -> i64 {
        i64::from(self.pid)
    }
    fn tid(&self) -> i64 {
        i64::from(self.tid)
    }
    fn ppid(&self) -> i64 {
        crate::process::proc::ids_of(self.pid).map_or(0, |(_, pp)| i64::from(pp))
    }
    fn uid(&self) -> i64 {
        0
    }
    fn cpu(&self) -> i64 {
        i64::from(self.cpu)
    }
    fn execname(&self) -> Vec<u8> {
        self.session
            .tasks
            .borrow()
            .comm(self.pid, self.tid)
            .as_bytes()
            .to_vec()
    }
    fn target(&self) -> i64 {
        self.target
    }
    fn now_ns(&self) -> i64 {
        self.now_ns
    }
    fn monotonic_ns(&self) -> i64 {
        self.monotonic_ns
    }
    fn arg(&self, index: usize) -> i64 {
        match (&self.marker, index) {
            (Some(m), 0) => m.filename.1 as i64,
            (Some(m), 1) => m.funcname.1 as i64,
            (Some(m), 2) => m.lineno,
            _ => 0,
        }
    }
    fn frame(&self) -> i64 {
        0
    }
    fn user_string(&mut self, addr: i64, max: Option<usize>) -> Result<Vec<u8>, String> {
        let Some(m) = &self.marker else {
            return Err(format!("{addr:#x} was not read at the marker"));
        };
        let bytes = match addr as u64 {
            a if a == m.filename.1 => m.filename.0,
            a if a == m.funcname.1 => m.funcname.0,
            _ => return Err(format!("{addr:#x} is not a string of this event")),
        };
        Ok(bytes[..max.unwrap_or(usize::MAX).min(bytes.len())].to_vec())
    }
    fn probe(&self) -> ProbeInfo {
        self.probe.clone()
    }
}
