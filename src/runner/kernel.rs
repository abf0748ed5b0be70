//! The kernel's rings as an [`EventSource`]: what the probes of a live
//! [`Session`] wrote (per-CPU rings and the shared ring buffer, merged by
//! timestamp in [`crate::engine::streams`]), handed out as records, task
//! records among them, up to the streams' watermark.

use std::ops::ControlFlow;

use anyhow::Result;

use super::source::{Each, EventSource, Item};
use crate::engine::session::Session;
use crate::engine::source::Source;

/// A live session's rings.
#[derive(Debug, Clone, Copy)]
pub struct KernelRings<'s> {
    session: &'s Session,
}

impl<'s> KernelRings<'s> {
    /// The rings of `session`.
    pub fn new(session: &'s Session) -> KernelRings<'s> {
        KernelRings { session }
    }
}

impl EventSource for KernelRings<'_> {
    /// Everything up to the streams' own watermark (`until` is for the
    /// sources merged with these: the rings know better what is settled).
    fn read(&mut self, _until: u64, last: bool, each: &mut Each<'_>) -> Result<()> {
        let session = self.session;
        let mut failure = None;
        // The ring buffer is borrowed mutably while the consumer reads the
        // rest of the session; consumers never touch the ring.
        session
            .streams()
            .borrow_mut()
            .consume(
                last,
                &mut |record| match each(Item::Record(record), session) {
                    Ok(ControlFlow::Continue(())) => true,
                    Ok(ControlFlow::Break(())) => false,
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                },
            );
        failure.map_or(Ok(()), Err)
    }

    fn hands_out_records(&self) -> bool {
        true
    }

    fn settled_before(&self) -> u64 {
        // Not past a record still being written (a probe preempted
        // between its clock reading and its publish).
        self.session.streams().borrow().handed_out_before()
    }

    fn context(&self) -> &dyn Source {
        self.session
    }
}
