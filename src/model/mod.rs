//! The model every view and export shares (pure: no I/O): who a function
//! is, per-thread stacks with the one rule that pairs an entry with its end
//! ([`stack`]: calls, and gc collections and imports in `tool::gc` and
//! `tool::imports`),
//! the slices a timeline is made of ([`slice`]), how they are named
//! ([`label`]), and the timeline that turns events into nested slices for
//! an export ([`timeline`]), fed from any run ([`feed`]).

pub mod feed;
pub mod label;
pub mod profile;
pub mod slice;
pub mod stack;
pub mod timeline;
