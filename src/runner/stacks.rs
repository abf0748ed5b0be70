//! The stacks the events' programs walked (`trace --stacks`) as an
//! [`EventSource`]: the session's stack ring, drained whole each pass and
//! handed out as [`Item::Stack`]s, then the time the drain started
//! ([`Item::StacksDrained`]). Read after the kernel's rings, so that every
//! stack of an event read there is in this drain, or was not sent
//! (`engine::stack_pairing`).

use std::ops::ControlFlow;

use anyhow::Result;

use super::source::{Each, EventSource, Item};
use crate::engine::session::Session;
use crate::engine::source::Source;

/// A live session's stack ring.
#[derive(Debug, Clone, Copy)]
pub struct StackRing<'s> {
    session: &'s Session,
}

impl<'s> StackRing<'s> {
    /// The stack ring of `session`, when its plan walks stacks.
    pub fn of(session: &'s Session) -> Option<StackRing<'s>> {
        session.stacks.as_ref().map(|_| StackRing { session })
    }
}

impl EventSource for StackRing<'_> {
    /// Everything in the ring: a stack is stamped with its event's time,
    /// long before it is written, so no watermark bounds it.
    fn read(&mut self, _until: u64, _last: bool, each: &mut Each<'_>) -> Result<()> {
        let session = self.session;
        let Some(stacks) = &session.stacks else {
            return Ok(());
        };
        let before = pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64;
        // Copied out (stacks are few) so that the consumer may look up the
        // stacks' processes in the session while it is handed them.
        let mut records = Vec::new();
        stacks.borrow_mut().ring().consume(&mut |record| {
            records.push(record.to_vec());
            true
        });
        // Every stack read is delivered (a stop asked for ends nothing
        // here: a live run delivers what the rings hold).
        for record in &records {
            let _: ControlFlow<()> = each(Item::Stack(record), session)?;
        }
        let _: ControlFlow<()> = each(Item::StacksDrained(before), session)?;
        Ok(())
    }

    fn hands_out_records(&self) -> bool {
        true
    }

    fn context(&self) -> &dyn Source {
        self.session
    }
}
