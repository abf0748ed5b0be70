use super::{FunctionEvent, SENT_SLOTS, SentSlot};
use std::mem::size_of;

/// `u64`: bytes ever written (the next record's position); the probe
/// stores it after the record is complete.
pub const HEAD: usize = 0;
/// `u64`: the busy count, taken with an atomic fetch-add by the probe
/// that writes (a probe preempting it on the same CPU finds it taken
/// and sends through the shared ring buffer instead).
pub const BUSY: usize = 8;
/// `u64`: the clock reading of the latest probe to take the region
/// (its record's timestamp), stored right after taking it: while the
/// region is taken, no record it will hold is older than this.
pub const PENDING: usize = 16;
/// `u64`: bytes pytap has consumed (its own cache line).
pub const TAIL: usize = 64;
/// `u64`: 1 once a probe found the region past [`WAKE_AT`] of its
/// size and woke pytap; pytap stores 0 when it gives space back (on
/// pytap's cache line: a probe reads it only while the region fills).
pub const WAKE: usize = 72;
/// The share of a region's data area (1/N) that, once filled, makes a
/// probe wake pytap rather than wait for its next poll: half.
pub const WAKE_AT: u32 = 2;
/// The CPU's [`SENT_SLOTS`] slots of names already sent, under
/// [`BUSY`].
pub const SENT: usize = 128;
/// Where the data area starts (page aligned).
pub const DATA: usize = (SENT + SENT_SLOTS * size_of::<SentSlot>()).next_multiple_of(4096);
/// Each record is preceded by a `u32` length (and 4 bytes of padding)
/// and padded to 8 bytes.
pub const FRAME: usize = 8;
/// The largest record written in place, framed.
pub const MAX_RECORD: usize = FRAME + size_of::<FunctionEvent>();
/// Bytes after the data area: a record that starts near its end is
/// written on past it, so every record is contiguous; its position
/// still advances as if it had wrapped around.
pub const SLACK: usize = MAX_RECORD.next_multiple_of(4096);
/// The region's size for a data area of `data` bytes (a power of two).
pub const fn region_bytes(data: usize) -> usize {
    DATA + data + SLACK
}
const _: () = assert!(size_of::<super::ImportEvent>() <= size_of::<FunctionEvent>());
