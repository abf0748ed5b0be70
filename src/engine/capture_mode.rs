//! Which path serves each event (`--capture`): the markers, or the
//! in-process capture (`crate::capture`) where the markers are gone or cost
//! more: function events on 3.12–3.14 and wherever asked, and every event
//! on a build without markers. The plan consults it per interpreter file
//! ([`CaptureMode::served_markers`]); the follower marks each launched
//! process the plan gives the agent with the events it is to give
//! ([`mark_served`]), and the agent serves exactly those, so the two never
//! disagree.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cpython::Marker;
use crate::process::module::Module;

/// Which path serves function events (`--capture`, and what attaching
/// implies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// A launched command's cheapest exact path, as the benchmark measures
    /// it: in-process on 3.11 (the compiled profile function: 2.3x on the
    /// standard-library workload against 8.4x with 3.11's armed markers),
    /// on 3.12–3.14 (where the markers are gone) and on builds without
    /// markers; the markers on 3.8–3.10 (as cheap as the profile function
    /// there, and nothing runs in the process) and on 3.15+.
    #[default]
    Auto,
    /// Running processes (`-p`): the markers wherever they are (nothing
    /// then runs in the process); in-process only where nothing else
    /// gives the events (3.12–3.14, builds without markers).
    Attached,
    /// Markers only (nothing runs in the target).
    Markers,
    /// In-process on every version pytap's agent serves (3.8+).
    InProcess,
}

/// What an interpreter offers: its version and which markers its build
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// (major, minor).
    pub version: (u8, u8),
    /// `function__entry` is among its markers.
    pub function_markers: bool,
    /// It has markers at all (3.12–3.14 keep gc, import and audit ones).
    pub markers: bool,
}

impl Offer {
    /// What `module` offers; `None` when its version is not known.
    pub fn of(module: &Module) -> Option<Offer> {
        Some(Offer {
            version: module.py_version()?.minor_version(),
            function_markers: !module.sites_of(Marker::FunctionEntry).is_empty(),
            markers: module.has_python_markers(),
        })
    }
}

/// An interpreter file some of whose events the agent gives, and which.
#[derive(Debug, Clone)]
pub struct Served {
    /// The interpreter.
    pub module: Arc<Module>,
    /// The markers the agent stands in for there.
    pub markers: BTreeSet<Marker>,
}

/// The oldest CPython the agent serves (a profile function before 3.12).
pub const OLDEST_SERVED: (u8, u8) = (3, 8);

impl CaptureMode {
    /// The markers the in-process capture stands in for.
    pub const SERVES: [Marker; 3] = [Marker::FunctionEntry, Marker::FunctionReturn, Marker::Line];

    /// The mode for a launched command tracing `markers`. `Auto`: markers
    /// when its program is a CPython whose markers the agent need not
    /// stand in for (nothing then runs in it, nor in its children: a
    /// 3.12–3.14 child is said to need `--capture in-process`); otherwise
    /// the agent, loading only where the plan serves (behind a shell or a
    /// wrapper script the interpreter is not known before the command
    /// runs). The other modes are as asked.
    pub fn for_command(self, argv: &[OsString], markers: &BTreeSet<Marker>) -> CaptureMode {
        // Asked for: every interpreter of the tree the plan serves gets
        // the agent.
        if self != CaptureMode::Auto {
            return self;
        }
        let offer = crate::process::resolve_command_for(argv, crate::process::Wanted::Interpreter)
            .ok()
            .and_then(|m| Offer::of(&m));
        match offer {
            Some(offer) if !markers.iter().any(|&m| self.serves_marker(offer, m)) => {
                CaptureMode::Markers
            }
            _ => self,
        }
    }

    /// Whether an interpreter offering `offer` gets its function events
    /// in-process.
    pub fn serves(self, offer: Offer) -> bool {
        let Offer {
            version,
            function_markers,
            ..
        } = offer;
        if version < OLDEST_SERVED {
            return false;
        }
        match self {
            // 3.11's markers fire only with the eval loop's tracing path
            // armed, which costs more than the compiled profile function
            // (scripts/bench.py measures both).
            CaptureMode::Auto => ((3, 11)..=(3, 14)).contains(&version) || !function_markers,
            CaptureMode::Attached => ((3, 12)..=(3, 14)).contains(&version) || !function_markers,
            CaptureMode::InProcess => true,
            CaptureMode::Markers => false,
        }
    }

    /// [`CaptureMode::serves`] for the interpreter in `module`.
    pub fn serves_module(self, module: &Module) -> bool {
        Offer::of(module).is_some_and(|offer| self.serves(offer))
    }

    /// Whether the agent gives `marker`'s events for an interpreter
    /// offering `offer`: function events as [`CaptureMode::serves`] says;
    /// gc, import and audit events where the build has no markers at all
    /// (their markers cost nothing until they fire).
    pub fn serves_marker(self, offer: Offer, marker: Marker) -> bool {
        if Self::SERVES.contains(&marker) {
            return self.serves(offer);
        }
        self != CaptureMode::Markers && offer.version >= OLDEST_SERVED && !offer.markers
    }

    /// The markers among `requested` whose events the agent gives for the
    /// interpreter in `module`.
    pub fn served_markers(self, module: &Module, requested: &BTreeSet<Marker>) -> BTreeSet<Marker> {
        let Some(offer) = Offer::of(module) else {
            return BTreeSet::new();
        };
        requested
            .iter()
            .copied()
            .filter(|&m| self.serves_marker(offer, m))
            .collect()
    }
}

/// The agent's name for the events of `marker` (`src/capture/agent.py`'s
/// `_EVENTS`).
pub fn agent_event(marker: Marker) -> &'static str {
    match marker {
        Marker::FunctionEntry => "entry",
        Marker::FunctionReturn => "return",
        Marker::Line => "line",
        Marker::GcStart => "gc_start",
        Marker::GcDone => "gc_done",
        Marker::ImportFindLoadStart => "import_start",
        Marker::ImportFindLoadDone => "import_done",
        Marker::Audit => "audit",
    }
}

/// What the agent is told to give for `markers`: their events' names,
/// comma-separated.
pub fn agent_events(markers: &BTreeSet<Marker>) -> String {
    let names: Vec<&str> = markers.iter().map(|&m| agent_event(m)).collect();
    names.join(",")
}

/// The file that tells a launched process's agent to serve it, and with
/// which events ([`agent_events`]): `PID.serve` in the capture directory,
/// written while the process is held at its exec, before any of its code
/// runs (`src/capture/agent.py` reads it and removes it).
pub fn served_mark(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.serve"))
}

/// Marks process `pid` as served by the agent for `markers` (see
/// [`served_mark`]).
pub fn mark_served(dir: &Path, pid: u32, markers: &BTreeSet<Marker>) -> std::io::Result<()> {
    std::fs::write(served_mark(dir, pid), agent_events(markers))
}
