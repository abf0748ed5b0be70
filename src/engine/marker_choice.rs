//! The markers a tool asks to trace, and what happens to one the target
//! lacks: the one thing every plan starts from.

use std::collections::BTreeSet;

use crate::cpython::Marker;

/// The markers a run traces.
#[derive(Debug, Clone, Copy)]
pub struct MarkerChoice<'a> {
    /// The markers.
    pub markers: &'a BTreeSet<Marker>,
    /// A marker the target lacks is an error (the user named it) rather
    /// than skipped.
    pub strict: bool,
}
