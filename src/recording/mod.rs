//! Recordings: `pytap record` writes every event of a run to a file
//! ([`write`]), and every view reads one back instead of a live target
//! (`-i FILE`, [`replay`]) or exports it ([`crate::export`]). The format
//! is [`format`]'s, documented in docs/recording.md.

pub mod format;
pub mod read;
pub mod write;

pub use format::StringTable;
