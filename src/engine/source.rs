//! Where a consumer's events come from, and what it can learn about them
//! beyond their records: a live [`Session`] or a replayed recording
//! ([`crate::runner::replay`]). The tools are written against
//! [`Source`], so `-i FILE` runs the same consumers as a live run.

use std::cell::Ref;

use super::decode::{AuditArgs, AuditRecord, Event};
use super::recover::Recovery;
use super::session::Session;
use super::tasks::TaskNames;
use crate::cpython::objects::ObjectLayout;

/// What a consumer may ask about the events it is given.
pub trait Source {
    /// The names of the threads as of the event being delivered.
    fn tasks(&self) -> Ref<'_, TaskNames>;

    /// A string the probe could not read, read from the binary instead
    /// (a live run only: a recording stores what was recovered).
    fn recover(&self, recovery: &mut Recovery, event: &Event<'_>, ptr: u64) -> Option<Vec<u8>>;

    /// The object layout of the module an event came from.
    fn layout(&self, event: &Event<'_>) -> Option<ObjectLayout>;

    /// The live session (its kernel maps), `None` when replaying.
    fn session(&self) -> Option<&Session>;

    /// Whether the events are a recording's, replayed.
    fn replaying(&self) -> bool {
        self.session().is_none()
    }

    /// The time a replay has reached (CLOCK_MONOTONIC ns of the recorded
    /// events) when a tick is due; `None` live, where ticks are wall time.
    fn clock_ns(&self) -> Option<u64> {
        None
    }

    /// An audit event's arguments, decoded (`None` when not captured).
    fn audit_args(&self, event: &Event<'_>, audit: &AuditRecord<'_>) -> Option<AuditArgs> {
        if let Some(recorded) = audit.recorded_args() {
            return recorded.cloned();
        }
        self.layout(event).and_then(|l| audit.args(&l))
    }
}

impl Source for Session {
    fn tasks(&self) -> Ref<'_, TaskNames> {
        self.tasks.borrow()
    }

    fn recover(&self, recovery: &mut Recovery, event: &Event<'_>, ptr: u64) -> Option<Vec<u8>> {
        recovery.string(self, event.header.site, event.header.pid, ptr)
    }

    fn layout(&self, event: &Event<'_>) -> Option<ObjectLayout> {
        let site = self.plan.sites.get(usize::from(event.header.site))?;
        let module = &self.plan.targets.get(site.module)?.module;
        ObjectLayout::for_version(module.py_version()?)
    }

    fn session(&self) -> Option<&Session> {
        Some(self)
    }
}
