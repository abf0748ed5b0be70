//! The processes whose event stacks the marker programs walk
//! (`codegen::event_stack`, `pytap trace --stacks`): each traced process
//! is told to the walk's `procs` map with its runtime and code type when
//! it gets probes (the launched command at its exec, a child at its fork,
//! an exec'd program with its new interpreter) and taken out when they
//! go; the ring the stacks arrive in; the interpreter a stack is named
//! from.
//!
//! A process whose interpreter is not mapped yet (an embedding program
//! held at its exec loads libpython later) is looked for again when its
//! events arrive, at most every [`RETRY_EVERY`]. A process whose own
//! layout differs from the one its module's file gave the walk is never
//! told: its stacks would be misread.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pytap_abi::sample::{MODE_ALL, ProcConfig, ThreadKey};
use pytap_sys::bpf::Map;
use pytap_sys::ringbuf::RingBuf;

use super::SessionError;
use crate::engine::codegen::MapTable;
use crate::engine::codegen::pystack::WALK_NAMES;
use crate::engine::sampler::{forget_process, tell_process, tell_threads};
use crate::process::python::{self, Interpreter};

/// How often a process whose interpreter was not found is looked at again.
pub const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Looks a process gets before pytap gives up on reading its stacks.
const TRIES: u32 = 50;

/// What pytap knows of a process's stacks.
#[derive(Debug)]
enum Known {
    /// Told to the walk.
    Told {
        interpreter: Box<Interpreter>,
        threads: Vec<ThreadKey>,
    },
    /// Not found yet (its interpreter may not be mapped yet).
    NotYet {
        why: String,
        tries: u32,
        next: Instant,
    },
    /// Its stacks are not read, and why.
    Refused(String),
}

/// The event stacks of a session.
#[derive(Debug)]
pub struct SessionStacks {
    ring: RingBuf,
    procs: usize,
    threads: usize,
    known: BTreeMap<u32, Known>,
}

impl SessionStacks {
    /// The stacks of a session whose plan has the walk's maps, else `None`.
    pub fn open(table: &MapTable, maps: &[Map]) -> Result<Option<SessionStacks>, SessionError> {
        let position = |name: &str| table.specs().iter().position(|s| s.name == name);
        let (Some(procs), Some(threads), Some(samples)) = (
            position(WALK_NAMES.procs),
            position(WALK_NAMES.threads),
            position(WALK_NAMES.samples),
        ) else {
            return Ok(None);
        };
        let ring = RingBuf::new(&maps[samples]).map_err(|source| SessionError::Map {
            name: WALK_NAMES.samples.into(),
            source,
        })?;
        Ok(Some(SessionStacks {
            ring,
            procs,
            threads,
            known: BTreeMap::new(),
        }))
    }

    /// Tells the walk about process `pid` (again, after an exec).
    pub fn add(&mut self, maps: &[Map], pid: u32) {
        self.remove(maps, pid);
        self.look(maps, pid, 0);
    }

    fn look(&mut self, maps: &[Map], pid: u32, tries: u32) {
        let known = match told(maps, self.procs, self.threads, pid) {
            Ok(known) => known,
            Err(Found::Refused(why)) => Known::Refused(why),
            Err(Found::NotYet(why)) if tries + 1 >= TRIES => Known::Refused(why),
            Err(Found::NotYet(why)) => Known::NotYet {
                why,
                tries: tries + 1,
                next: Instant::now() + RETRY_EVERY,
            },
        };
        self.known.insert(pid, known);
    }

    /// Takes process `pid` out of the walk (it exited or executed).
    pub fn remove(&mut self, maps: &[Map], pid: u32) {
        if let Some(Known::Told { threads, .. }) = self.known.remove(&pid) {
            forget_process(&maps[self.procs], &maps[self.threads], pid, &threads);
        }
    }

    /// The interpreter the stacks of `pid` are named from, or why there is
    /// none; a process not found yet is looked for again when due.
    pub fn interpreter(&mut self, maps: &[Map], pid: u32) -> Result<&Interpreter, String> {
        if let Some(Known::NotYet { tries, next, .. }) = self.known.get(&pid)
            && Instant::now() >= *next
        {
            let tries = *tries;
            self.look(maps, pid, tries);
        }
        match self.known.get(&pid) {
            Some(Known::Told { interpreter, .. }) => Ok(interpreter),
            Some(Known::NotYet { why, .. }) | Some(Known::Refused(why)) => Err(why.clone()),
            None => Err(format!("process {pid} is not traced")),
        }
    }

    /// Reads the thread states of `pid` again (a stack found none for its
    /// thread: a thread started since, beyond what the walk scans).
    pub fn refresh_threads(&mut self, maps: &[Map], pid: u32) {
        if let Some(Known::Told {
            interpreter,
            threads,
        }) = self.known.get_mut(&pid)
            && let Some(keys) = tell_threads(&maps[self.threads], threads, interpreter)
        {
            *threads = keys;
        }
    }

    /// The ring the stacks arrive in.
    pub fn ring(&mut self) -> &mut RingBuf {
        &mut self.ring
    }

    /// The ring's fd: readable when a stack arrives (each wakes pytap, so
    /// that its frames are named while the process is alive).
    pub fn wakeup_fd(&self) -> i32 {
        self.ring.raw_fd()
    }
}

/// Why a process was not told.
enum Found {
    /// Maybe later (nothing defines `_PyRuntime` yet).
    NotYet(String),
    /// Never.
    Refused(String),
}

/// Finds `pid`'s interpreter and tells the walk about it.
fn told(maps: &[Map], procs: usize, threads: usize, pid: u32) -> Result<Known, Found> {
    let interpreter = python::find(pid).map_err(|e| {
        let why = e.to_string();
        match why.contains("_PyRuntime") {
            true => Found::NotYet(why),
            false => Found::Refused(why),
        }
    })?;
    let file = python::file_layout(&interpreter.module).map_err(Found::Refused)?;
    if file != interpreter.runtime.layout {
        return Err(Found::Refused(format!(
            "the layout process {pid} declares differs from its file's ({})",
            interpreter.module.path.display()
        )));
    }
    let config = ProcConfig {
        runtime: interpreter.runtime.address,
        code_type: interpreter.runtime.code_type,
        slot: 0,
        mode: MODE_ALL,
    };
    tell_process(&maps[procs], pid, &config).map_err(|e| Found::Refused(e.to_string()))?;
    let keys = tell_threads(&maps[threads], &[], &interpreter).unwrap_or_default();
    Ok(Known::Told {
        interpreter: Box::new(interpreter),
        threads: keys,
    })
}
