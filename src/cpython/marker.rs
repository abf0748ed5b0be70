//! The `python:*` markers CPython declares, their arguments, and how users
//! may spell them.
//!
//! `Include/pydtrace.d` declares the markers; `<sys/sdt.h>` writes them with
//! double underscores (`function__entry`) and DTrace shows them with dashes
//! (`function-entry`). pytap accepts both and prints CPython's spelling.

use std::fmt;
use std::str::FromStr;

/// Provider name of CPython's markers.
pub const PROVIDER: &str = "python";

/// One of CPython's eight markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Marker {
    /// A Python function starts running (also on every generator resume).
    FunctionEntry,
    /// A Python function returns (also on every yield and when an exception leaves it).
    FunctionReturn,
    /// The interpreter reaches a new line.
    Line,
    /// A garbage collection starts.
    GcStart,
    /// A garbage collection ends.
    GcDone,
    /// The import system starts looking for and loading a module.
    ImportFindLoadStart,
    /// The import system is done looking for and loading a module.
    ImportFindLoadDone,
    /// An audit event is raised (`sys.audit`, PEP 578).
    Audit,
}

/// What a marker tells about: the groups `pytap info --scan` summarises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerClass {
    /// Function entry and return (flow, top, calls).
    Function,
    /// New lines.
    Line,
    /// Garbage collections.
    Gc,
    /// Imports.
    Import,
    /// Audit events.
    Audit,
}

/// The C type of a marker argument, which decides how it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `const char *` in the target's memory.
    String,
    /// A signed integer.
    Int,
    /// `PyObject *` (the audit arguments tuple).
    Object,
}

impl Marker {
    /// All markers, in the order pytap lists them.
    pub const ALL: [Marker; 8] = [
        Marker::FunctionEntry,
        Marker::FunctionReturn,
        Marker::Line,
        Marker::GcStart,
        Marker::GcDone,
        Marker::ImportFindLoadStart,
        Marker::ImportFindLoadDone,
        Marker::Audit,
    ];

    /// What the marker tells about.
    pub fn class(self) -> MarkerClass {
        match self {
            Marker::FunctionEntry | Marker::FunctionReturn => MarkerClass::Function,
            Marker::Line => MarkerClass::Line,
            Marker::GcStart | Marker::GcDone => MarkerClass::Gc,
            Marker::ImportFindLoadStart | Marker::ImportFindLoadDone => MarkerClass::Import,
            Marker::Audit => MarkerClass::Audit,
        }
    }

    /// CPython's spelling, as in the ELF note: `function__entry`.
    pub fn name(self) -> &'static str {
        match self {
            Marker::FunctionEntry => "function__entry",
            Marker::FunctionReturn => "function__return",
            Marker::Line => "line",
            Marker::GcStart => "gc__start",
            Marker::GcDone => "gc__done",
            Marker::ImportFindLoadStart => "import__find__load__start",
            Marker::ImportFindLoadDone => "import__find__load__done",
            Marker::Audit => "audit",
        }
    }

    /// DTrace's spelling: `function-entry`.
    pub fn dtrace_name(self) -> String {
        self.name().replace("__", "-")
    }

    /// The marker's arguments (name and kind), as `pydtrace.d` declares them.
    pub fn args(self) -> &'static [(&'static str, ArgKind)] {
        use ArgKind::*;
        match self {
            Marker::FunctionEntry | Marker::FunctionReturn | Marker::Line => {
                &[("filename", String), ("funcname", String), ("lineno", Int)]
            }
            Marker::GcStart => &[("generation", Int)],
            Marker::GcDone => &[("collected", Int)],
            Marker::ImportFindLoadStart => &[("module", String)],
            Marker::ImportFindLoadDone => &[("module", String), ("found", Int)],
            Marker::Audit => &[("event", String), ("args", Object)],
        }
    }

    /// The marker with this note name (`function__entry`), if it is one of CPython's.
    pub fn from_note_name(name: &str) -> Option<Marker> {
        Marker::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A marker name that is not one of CPython's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown marker `{0}`; CPython's markers are: {list}", list = Marker::ALL.map(Marker::name).join(", "))]
pub struct UnknownMarker(pub String);

impl FromStr for Marker {
    type Err = UnknownMarker;

    /// Accepts `function__entry`, `function-entry` and either with a
    /// `python:` provider prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix("python:").unwrap_or(s);
        let normalized = bare.replace('-', "__");
        Marker::from_note_name(&normalized).ok_or_else(|| UnknownMarker(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_and_the_provider_prefix() {
        assert_eq!("function__entry".parse(), Ok(Marker::FunctionEntry));
        assert_eq!("function-entry".parse(), Ok(Marker::FunctionEntry));
        assert_eq!("python:gc-start".parse(), Ok(Marker::GcStart));
        assert_eq!(
            "import-find-load-done".parse(),
            Ok(Marker::ImportFindLoadDone)
        );
        assert_eq!(
            Marker::ImportFindLoadDone.dtrace_name(),
            "import-find-load-done"
        );
        let err = "function_entry".parse::<Marker>().unwrap_err();
        assert!(
            err.to_string()
                .contains("function__entry, function__return")
        );
    }
}
