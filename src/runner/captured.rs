//! The in-process capture as an [`EventSource`]: the events the agents
//! wrote into their rings ([`crate::capture`]), decoded, up to the time
//! the pump asks for. Their context is the live [`Session`] beside them.

use std::ops::ControlFlow;

use anyhow::Result;

use super::source::{Each, EventSource, Item};
use crate::capture::Capture;
use crate::engine::session::Session;
use crate::engine::source::Source;

/// The capture's rings, read beside a session.
#[derive(Debug)]
pub struct Captured<'s> {
    capture: &'s mut Capture,
    session: &'s Session,
}

impl<'s> Captured<'s> {
    /// `capture`'s rings; its events are asked about through `session`.
    pub fn new(capture: &'s mut Capture, session: &'s Session) -> Captured<'s> {
        Captured { capture, session }
    }
}

impl EventSource for Captured<'_> {
    /// Each ring up to its first event after `until`. A stop asked for
    /// by the consumer ends nothing here: a live run delivers what the
    /// rings hold until it has detached.
    fn read(&mut self, until: u64, _last: bool, each: &mut Each<'_>) -> Result<()> {
        let session = self.session;
        self.capture.drain_until(until, &mut |event| {
            let _: ControlFlow<()> = each(Item::Event(event), session)?;
            Ok(())
        })?;
        Ok(())
    }

    fn hands_out_records(&self) -> bool {
        false
    }

    fn context(&self) -> &dyn Source {
        self.session
    }
}
