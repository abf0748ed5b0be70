//! Records held back for a merge: copied once, back to back in one
//! buffer (no allocation per record once the buffer has grown), each with
//! the source it came from, delivered in order and forgotten.

use anyhow::Result;

use crate::engine::decode;

/// A record's time and process (a task record's or an event's), `None`
/// when it is damaged.
fn stamp(record: &[u8]) -> Option<(u64, u32)> {
    match decode::task(record) {
        Some(Ok(t)) => Some((t.ts_ns, t.pid)),
        Some(Err(_)) => None,
        None => decode::header(record).ok().map(|h| (h.ts_ns, h.pid)),
    }
}

/// Records copied out for later, back to back in one buffer (one copy
/// each, no allocation per record once the buffer has grown).
#[derive(Debug, Default)]
pub(super) struct Held {
    bytes: Vec<u8>,
    spans: Vec<Span>,
    /// Every span before this one is delivered.
    first: usize,
}

/// One held record.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    /// 0 once delivered.
    len: usize,
    /// The source it came from (its context when delivered).
    source: usize,
}

impl Held {
    pub(super) fn push(&mut self, source: usize, record: &[u8]) {
        self.spans.push(Span {
            start: self.bytes.len(),
            len: record.len(),
            source,
        });
        self.bytes.extend_from_slice(record);
    }

    /// Hands `deliver` the held records up to `until` (of process `pid`
    /// only, when given), in order, with the index of their source, and
    /// forgets them; returns how many were damaged (dropped, to be
    /// counted).
    pub(super) fn deliver_due(
        &mut self,
        pid: Option<u32>,
        until: u64,
        deliver: &mut dyn FnMut(&[u8], usize) -> Result<()>,
    ) -> Result<u64> {
        let Held {
            bytes,
            spans,
            first,
        } = self;
        // Those before `first` are all delivered (so each event of the
        // streamed source does not scan them again).
        while spans.get(*first).is_some_and(|s| s.len == 0) {
            *first += 1;
        }
        let mut damaged = 0;
        for span in spans[*first..].iter_mut().filter(|s| s.len != 0) {
            let record = &bytes[span.start..span.start + span.len];
            let Some((ts, record_pid)) = stamp(record) else {
                damaged += 1;
                span.len = 0;
                continue;
            };
            if ts > until {
                // Later ones of this process wait with it.
                if pid.is_none_or(|p| p == record_pid) {
                    break;
                }
                continue;
            }
            if pid.is_some_and(|p| p != record_pid) {
                continue;
            }
            span.len = 0;
            deliver(record, span.source)?;
        }
        Ok(damaged)
    }

    /// Orders the spans by time, stably (a damaged record goes first, to
    /// be counted).
    pub(super) fn sort_by_time(&mut self) {
        let bytes = &self.bytes;
        self.spans
            .sort_by_key(|s| stamp(&bytes[s.start..s.start + s.len]).map(|(ts, _)| ts));
    }

    /// Forgets the delivered records, keeping the others in order.
    pub(super) fn compact(&mut self) {
        // (Sorted by time, a span may start before the one ahead of it:
        // in place only when the order of the bytes is kept.)
        self.spans.retain(|s| s.len != 0);
        let mut end = 0;
        if self.spans.is_sorted_by_key(|s| s.start) {
            for span in &mut self.spans {
                self.bytes
                    .copy_within(span.start..span.start + span.len, end);
                span.start = end;
                end += span.len;
            }
            self.bytes.truncate(end);
        } else {
            let mut bytes = Vec::with_capacity(self.bytes.capacity());
            for span in &mut self.spans {
                let start = bytes.len();
                bytes.extend_from_slice(&self.bytes[span.start..span.start + span.len]);
                span.start = start;
            }
            self.bytes = bytes;
        }
        self.first = 0;
    }
}
