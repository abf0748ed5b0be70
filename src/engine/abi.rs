//! The event ABI, as `crates/abi` defines it (`pytap_abi::event`: every
//! record, kind, flag and the per-CPU rings' layout), with what that crate
//! cannot know: which CPython marker each record kind comes from.

pub use pytap_abi::event::*;

use crate::cpython::Marker;

/// The marker behind each record kind.
pub trait KindMarker {
    /// The kind a marker's full event has.
    fn of(marker: Marker) -> Self;
    /// The marker this kind comes from.
    fn marker(self) -> Marker;
}

impl KindMarker for EventKind {
    fn of(marker: Marker) -> EventKind {
        match marker {
            Marker::FunctionEntry => EventKind::FunctionEntry,
            Marker::FunctionReturn => EventKind::FunctionReturn,
            Marker::Line => EventKind::Line,
            Marker::GcStart => EventKind::GcStart,
            Marker::GcDone => EventKind::GcDone,
            Marker::ImportFindLoadStart => EventKind::ImportStart,
            Marker::ImportFindLoadDone => EventKind::ImportDone,
            Marker::Audit => EventKind::Audit,
        }
    }

    fn marker(self) -> Marker {
        Marker::ALL[self as usize - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_has_its_kind_and_back() {
        for (marker, kind) in Marker::ALL.into_iter().zip(EventKind::ALL) {
            assert_eq!(EventKind::of(marker), kind);
            assert_eq!(kind.marker(), marker);
        }
    }
}
