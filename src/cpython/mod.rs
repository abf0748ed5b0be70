//! What pytap knows about CPython: its markers, how to read a binary's
//! version, and what each marker really does on each version.

pub mod debug_offsets;
pub mod frames;
pub mod layout;
pub mod linetable;
pub mod marker;
pub mod objects;
pub mod stack;
pub mod verdict;
pub mod version;

pub use marker::{Marker, MarkerClass, PROVIDER};
pub use version::PyVersion;
