//! What the one loop ([`super::pump`]) reads events from: an
//! [`EventSource`] hands out [`Item`]s in its own time order, each with
//! the [`Source`] a consumer may ask about it. The kernel's rings
//! ([`super::kernel`]), the in-process capture ([`super::captured`]) and a
//! recording ([`super::recorded`]) are sources; the pump merges them by
//! timestamp.

use std::ops::ControlFlow;

use anyhow::Result;

use crate::engine::decode::Event;
use crate::engine::source::Source;

/// One thing a source hands the loop.
#[derive(Debug)]
pub enum Item<'a> {
    /// A record as a probe wrote it (an event, a task record or a
    /// script's record), decoded by the pump when it is delivered. Records
    /// are self-contained bytes, so a merge can hold them back (copied)
    /// until another source has caught up.
    Record(&'a [u8]),
    /// An event already decoded, borrowing from the source's buffer: it
    /// is delivered at once.
    Event(&'a Event<'a>),
    /// A stack an event's program walked (`pytap_abi::sample`'s record),
    /// delivered at once, before the records held back for the merge.
    Stack(&'a [u8]),
    /// The stack ring was drained from this time on (CLOCK_MONOTONIC ns,
    /// read before the drain).
    StacksDrained(u64),
    /// Thread `tid` of process `pid` ended after its last event; with
    /// `exec`, the process executed a new program through it.
    Ended {
        /// The process.
        pid: u32,
        /// The thread.
        tid: u32,
        /// The process executed a program (`tid` now has its id).
        exec: bool,
    },
}

/// What the pump does with each item: go on, or stop reading this source
/// for this pass (the consumer asked to stop).
pub type Each<'e> = dyn FnMut(Item<'_>, &dyn Source) -> Result<ControlFlow<()>> + 'e;

/// A source of events for the loop.
pub trait EventSource {
    /// Hands `each` what the source has now, in time order per thread, up
    /// to the first item stamped after `until` (CLOCK_MONOTONIC ns; later
    /// items wait for the next read). `last`: the final read, the
    /// producers are gone and everything visible is handed out.
    fn read(&mut self, until: u64, last: bool, each: &mut Each<'_>) -> Result<()>;

    /// Whether the source hands out no borrowed [`Item::Event`]: its
    /// records the pump may hold back to merge with another source (and
    /// its stacks it delivers at once). At most one source of a pass
    /// hands out borrowed events.
    fn hands_out_records(&self) -> bool;

    /// A time before which this source has handed out everything it will
    /// have (after a [`read`](EventSource::read)): a source merged with it
    /// may go up to here.
    fn settled_before(&self) -> u64 {
        u64::MAX
    }

    /// What a consumer may ask about this source's items (the context of
    /// records held back and delivered later).
    fn context(&self) -> &dyn Source;
}
