//! What each marker really does on each CPython version.
//!
//! A marker being in the ELF notes does not mean it fires. These facts were
//! measured on Debian's builds of 3.9, 3.11, 3.13, 3.14 and 3.15 (and source
//! builds of 3.8, 3.10 and 3.12) with bpftrace and with pytap's own kernel
//! tests; the upstream issues are cited where they explain the cause.
//!
//! | versions  | function markers                                   | line   |
//! |-----------|----------------------------------------------------|--------|
//! | ≤ 3.10    | fire for every call, entry and return balanced     | fires  |
//! | 3.11      | entry fires only while the eval loop traces        | fires  |
//! | 3.12–3.14 | removed with the PEP 669 rewrite                   | gone   |
//! | 3.15      | restored; generators and `__init__` unbalance them | gone   |
//!
//! `gc__*`, `import__find__load__*` (3.7+) and `audit` (3.8+) fire on every
//! version that has them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::marker::Marker;
use super::version::PyVersion;

/// How far a marker can be relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Fires every time its event happens.
    Fires,
    /// Fires completely only when pytap arms something first; pytap does.
    FiresWhenArmed,
    /// Fires, but entries and returns do not pair up one to one.
    Unbalanced,
    /// Not in this binary: nothing to attach to.
    Absent,
    /// In the binary, on a version pytap has no facts about.
    Unknown,
}

impl Support {
    /// Short word for text output.
    pub fn word(self) -> &'static str {
        match self {
            Support::Fires => "fires",
            Support::FiresWhenArmed => "armed",
            Support::Unbalanced => "unbalanced",
            Support::Absent => "absent",
            Support::Unknown => "unknown",
        }
    }
}

/// pytap's verdict on one marker of one binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkerVerdict {
    /// The marker.
    #[serde(serialize_with = "serialize_marker")]
    pub marker: Marker,
    /// Number of sites in the binary (0 when absent).
    pub sites: usize,
    /// The verdict.
    pub support: Support,
    /// Why, in one sentence.
    pub reason: &'static str,
    /// What pytap does about it, or what the user can do; `None` when nothing is needed.
    pub workaround: Option<&'static str>,
}

fn serialize_marker<S: serde::Serializer>(m: &Marker, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

const ENTRY_311: &str = "Python-to-Python calls are inlined in 3.11 and skip this marker unless the eval loop \
     runs its tracing path (cpython#98894): without help it fires only for a few frames entered from C";
const ENTRY_311_FIX: &str = "when function__entry is traced, pytap switches the line marker on without recording \
     any line: every entry then fires, and the program runs its slower tracing path while pytap is attached";
const REMOVED_312: &str =
    "removed from CPython 3.12 to 3.14 by the PEP 669 rewrite of the eval loop (cpython#104280)";
const REMOVED_312_FIX: &str = "pytap captures these events inside the interpreter instead (a sys.monitoring agent) \
     when it launches the program (`-c`, `--`), and in a running 3.14 through PEP 768 (`-p`); a running 3.12 or 3.13 cannot be given it";
const LINE_GONE_FIX: &str =
    "on 3.12-3.14 pytap's agent captures lines inside a launched interpreter";
const LINE_GONE: &str =
    "removed in CPython 3.12 and not restored (3.15 brought back only the function markers)";
const ENTRY_315: &str = "fires for every Python call, and once more when a generator or coroutine is created \
     (that entry never gets a return)";
const RETURN_315: &str = "fires for every return and yield, and also for the `__init__` shim frame pushed when a \
     class with a Python __init__ is instantiated (a return without an entry)";
const ENTRY_315_FIX: &str = "pytap's flow reads the frame at function__entry to recognise a generator's \
     creation and does not show it (`pytap info` says whether this build shows where the frame is; if not, flow \
     closes the creation when an outer frame returns, and until then shows that thread one level deeper); calls \
     leaves entries that never return uncounted; top counts entries, generator creations included; \
     `pytap trace` shows the raw events";
const RETURN_315_FIX: &str = "flow and calls match each return with the innermost frame of its function, so the \
     shim's returns, which have no entry, are dropped (and counted in the summary); `pytap trace` shows the raw \
     events";
const BALANCED: &str =
    "fires for every Python call; entry and return balance (generators: one per resume and yield)";
const AUDIT_314: &str = "fires for every audit event; a few event names point into pages the kernel cannot read \
     from BPF yet, and pytap recovers those from the binary";

/// Whether this version's function and line probe code fails on a file
/// name that is not UTF-8 (every version that has those markers; see
/// [`crate::engine::hazard`]).
pub fn fails_on_non_utf8_paths(version: Option<PyVersion>) -> bool {
    version.is_some_and(|v| v.major == 3 && (v.minor <= 11 || v.minor >= 15))
}

/// What [`fails_on_non_utf8_paths`] means for the user.
pub const NON_UTF8_PATHS: &str = "a file or function name that is not UTF-8 makes this CPython fail (SystemError) \
     once function or line markers are armed (CPython gh-156118): pytap does not arm them for a program whose \
     script, working directory, PYTHONPATH, interpreter or mapped files have such a name unless given --force \
     (a launched program gets its function events from inside the interpreter instead)";

/// The verdict for every CPython marker, given the binary's version (if
/// known) and the number of sites of each marker it carries.
pub fn verdicts(version: Option<PyVersion>, sites: &BTreeMap<Marker, usize>) -> Vec<MarkerVerdict> {
    Marker::ALL
        .into_iter()
        .map(|marker| {
            let count = sites.get(&marker).copied().unwrap_or(0);
            let (support, reason, workaround) = judge(marker, version, count);
            MarkerVerdict {
                marker,
                sites: count,
                support,
                reason,
                workaround,
            }
        })
        .collect()
}

type Judgement = (Support, &'static str, Option<&'static str>);

fn judge(marker: Marker, version: Option<PyVersion>, sites: usize) -> Judgement {
    use Marker::*;
    let minor = version.filter(|v| v.major == 3).map(|v| v.minor);
    if sites == 0 {
        return absent(marker, minor);
    }
    let Some(minor) = minor else {
        return (
            Support::Unknown,
            "the CPython version could not be read from the binary, so pytap cannot tell whether it fires",
            None,
        );
    };
    match (minor, marker) {
        (..=10, FunctionEntry | FunctionReturn) => (Support::Fires, BALANCED, None),
        (11, FunctionEntry) => (Support::FiresWhenArmed, ENTRY_311, Some(ENTRY_311_FIX)),
        (11, FunctionReturn) => (
            Support::Fires,
            "fires for every Python function return, inlined calls included",
            None,
        ),
        (15, FunctionEntry) => (Support::Unbalanced, ENTRY_315, Some(ENTRY_315_FIX)),
        (15, FunctionReturn) => (Support::Unbalanced, RETURN_315, Some(RETURN_315_FIX)),
        (16.., _) => (
            Support::Unknown,
            "pytap has no facts about this version yet; expect it to behave like 3.15",
            None,
        ),
        (..=11, Line) => (
            Support::Fires,
            "fires when a new line starts executing",
            None,
        ),
        (14, Audit) => (Support::Fires, AUDIT_314, None),
        (_, GcStart) => (
            Support::Fires,
            "fires when a collection starts; the argument is the generation",
            None,
        ),
        (_, GcDone) => (
            Support::Fires,
            "fires when a collection ends; the argument is the number of objects collected",
            None,
        ),
        (_, ImportFindLoadStart | ImportFindLoadDone) => (
            Support::Fires,
            "fires for modules not yet in sys.modules, submodules and C modules included",
            None,
        ),
        (_, Audit) => (
            Support::Fires,
            "fires for every audit event (sys.audit and the built-in events)",
            None,
        ),
        // Present where no known version has it: an unusual build.
        (_, FunctionEntry | FunctionReturn | Line) => (
            Support::Unknown,
            "present in this binary although this CPython version does not emit it",
            None,
        ),
    }
}

fn absent(marker: Marker, minor: Option<u8>) -> Judgement {
    use Marker::*;
    let reason = match (marker, minor) {
        (FunctionEntry | FunctionReturn, Some(12..=14)) => {
            return (Support::Absent, REMOVED_312, Some(REMOVED_312_FIX));
        }
        (Line, Some(12..=14)) => return (Support::Absent, LINE_GONE, Some(LINE_GONE_FIX)),
        (Line, Some(15..)) => LINE_GONE,
        (ImportFindLoadStart | ImportFindLoadDone, Some(..=6)) => "added in CPython 3.7",
        (Audit, Some(..=7)) => "added in CPython 3.8 (PEP 578)",
        _ => "not in this binary's .note.stapsdt, although CPython of this version has it",
    };
    (Support::Absent, reason, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(markers: &[Marker]) -> BTreeMap<Marker, usize> {
        markers.iter().map(|m| (*m, 1)).collect()
    }

    fn support(v: (u8, u8), present: &[Marker]) -> Vec<(Marker, Support)> {
        verdicts(Some(PyVersion::new(v.0, v.1, 0)), &sites(present))
            .into_iter()
            .map(|v| (v.marker, v.support))
            .collect()
    }

    #[test]
    fn every_class() {
        use Marker::*;
        use Support::*;
        let all = Marker::ALL;
        let five = [
            GcStart,
            GcDone,
            ImportFindLoadStart,
            ImportFindLoadDone,
            Audit,
        ];
        let seven = [
            FunctionEntry,
            FunctionReturn,
            GcStart,
            GcDone,
            ImportFindLoadStart,
            ImportFindLoadDone,
            Audit,
        ];
        assert!(support((3, 9), &all).iter().all(|(_, s)| *s == Fires));
        let v311 = support((3, 11), &all);
        assert_eq!(v311[0], (FunctionEntry, FiresWhenArmed));
        assert!(v311[1..].iter().all(|(_, s)| *s == Fires));
        for minor in [12, 13, 14] {
            let v = support((3, minor), &five);
            assert_eq!(
                &v[..3],
                &[
                    (FunctionEntry, Absent),
                    (FunctionReturn, Absent),
                    (Line, Absent)
                ]
            );
            assert!(v[3..].iter().all(|(_, s)| *s == Fires));
        }
        let v315 = support((3, 15), &seven);
        assert_eq!(
            &v315[..3],
            &[
                (FunctionEntry, Unbalanced),
                (FunctionReturn, Unbalanced),
                (Line, Absent)
            ]
        );
        assert!(
            support((3, 16), &seven)
                .iter()
                .filter(|(_, s)| *s == Unknown)
                .count()
                == 7
        );
    }

    #[test]
    fn reasons_name_the_cause_and_the_fix() {
        let v = verdicts(Some(PyVersion::new(3, 13, 5)), &BTreeMap::new());
        assert!(v[0].reason.contains("PEP 669"));
        assert!(v[0].workaround.unwrap().contains("inside the interpreter"));
        assert!(v[2].workaround.unwrap().contains("agent"));
        let v = verdicts(Some(PyVersion::new(3, 11, 2)), &sites(&Marker::ALL));
        assert!(v[0].workaround.unwrap().contains("line"));
        let unknown = verdicts(None, &sites(&[Marker::GcStart]));
        assert_eq!(unknown[3].support, Support::Unknown);
    }
}
