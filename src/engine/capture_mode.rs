//! Which path serves function events (`--capture`): the markers, or the
//! in-process capture (`crate::capture`) where the markers are gone or cost
//! more. The plan consults it; the capture is what it chooses.

use std::ffi::OsString;

use crate::cpython::Marker;

/// Which path serves function events (`--capture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Markers where they exist, in-process on 3.12–3.14 where they are
    /// gone.
    #[default]
    Auto,
    /// Markers only (nothing runs in the target).
    Markers,
    /// In-process where it costs less than the markers: 3.11 (a profile
    /// function) and 3.12+ (a `sys.monitoring` tool); markers on 3.8-3.10.
    InProcess,
}

impl CaptureMode {
    /// The markers the in-process capture stands in for.
    pub const SERVES: [Marker; 3] = [Marker::FunctionEntry, Marker::FunctionReturn, Marker::Line];

    /// The mode for a launched command. `Auto`: markers when its program
    /// is a CPython with function markers (nothing then runs in it, nor in
    /// its children: a 3.12–3.14 child is said to need `--capture
    /// in-process`); otherwise the agent, loading only where it serves
    /// (behind a shell or a wrapper script the version is not known
    /// before the command runs). The other modes are as asked.
    pub fn for_command(self, argv: &[OsString]) -> CaptureMode {
        // Asked for: every interpreter of the tree gets the agent (one of
        // 3.11 or older, or of another kind, runs only its first lines).
        if self != CaptureMode::Auto {
            return self;
        }
        let version = argv
            .first()
            .and_then(|p| pytap_sys::ptrace::find_program(p))
            .and_then(|path| crate::process::module::Module::open(&path, &path).ok())
            .and_then(|m| m.py_version());
        match version {
            Some(v) if !self.serves(v.minor_version()) => CaptureMode::Markers,
            _ => self,
        }
    }

    /// Whether a CPython of this (major, minor) gets its function events
    /// in-process.
    pub fn serves(self, version: (u8, u8)) -> bool {
        match self {
            CaptureMode::Auto => ((3, 12)..=(3, 14)).contains(&version),
            // 3.11's markers need the eval loop's tracing path armed, which
            // costs more than a profile function; on 3.8-3.10 the markers
            // cost less (scripts/bench_capture.py measures both).
            CaptureMode::InProcess => version == (3, 11) || version >= (3, 12),
            CaptureMode::Markers => false,
        }
    }
}
