//! The kernel's record streams and their merge: the per-CPU rings the
//! function and import records are written into in place
//! ([`super::codegen::inplace`]) and the shared ring buffer (every other
//! record, and a probe's that preempted another on its CPU), handed to the
//! run loop as one stream in timestamp order.
//!
//! Within a region records are in time order (one writer at a time, each
//! reading the clock after taking the region), and a thread's records are
//! in time order across regions (it migrates between probes, never during
//! one). So merging by timestamp gives every thread's records in the order
//! they happened, provided nothing older than a record handed out can
//! still appear. Each drain therefore reads the clock first and hands out
//! only records older than a *watermark*, the least of each source's bound:
//! - a region whose busy count was free when looked at (after the clock
//!   was read): every later writer reads the clock after taking it, so
//!   every record it will hold later is newer than that clock reading, and
//!   every earlier writer stored its head before giving the count back;
//! - a region that was busy: the clock reading its writer stored after
//!   taking the count (looked at after the busy count, before the head).
//!   It is that writer's record's timestamp, or an earlier writer's (not
//!   stored yet), or a later writer's whose predecessor's head is then
//!   visible: in each case no record still to appear there is older;
//! - the shared ring buffer, read to its end, bounds likewise (its probes
//!   read the clock after reserving); stopped at a record still being
//!   written, it keeps its bound.
//!
//! Records of the shared ring buffer are copied out (they are few: task,
//! gc and audit records, and the preempted probes'), those of the regions
//! read where they lie.

use std::collections::VecDeque;

use pytap_sys::cpuring::{CpuRings, RingLayout};
use pytap_sys::ringbuf::RingBuf;

use super::abi::{off, ring};

/// Where the session's records come from.
#[derive(Debug)]
pub struct KernelStreams {
    ring: RingBuf,
    rings: Option<Regions>,
    /// Every kernel record older than this has been handed out (see
    /// [`KernelStreams::handed_out_before`]).
    watermark: u64,
}

/// The per-CPU rings and what the merge knows of them.
#[derive(Debug)]
struct Regions {
    rings: CpuRings,
    /// Per region: every record it will hold that is not visible yet is
    /// newer than this.
    bounds: Vec<u64>,
    /// The same for the shared ring buffer.
    ring_bound: u64,
    /// Records copied out of the shared ring buffer, by timestamp.
    held: VecDeque<(u64, Vec<u8>)>,
    /// Per region, this drain: (position, head, timestamp of the record
    /// at the position, or `u64::MAX` when there is none).
    cursors: Vec<(u64, u64, u64)>,
    /// Regions whose contents made no sense (skipped to their head).
    corrupt: u64,
}

/// The layout of a ring region, as the code generator writes it.
pub fn ring_layout() -> RingLayout {
    RingLayout {
        head: ring::HEAD,
        busy: ring::BUSY,
        pending: ring::PENDING,
        tail: ring::TAIL,
        wake: ring::WAKE,
        data: ring::DATA,
        frame: ring::FRAME,
    }
}

/// A record's timestamp (0 when it is too short to have one: it is handed
/// out at once, and the decoder calls it malformed).
fn timestamp(record: &[u8]) -> u64 {
    record
        .get(off::TS..off::TS + 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
}

impl KernelStreams {
    /// The streams of a session: its ring buffer and, when it has them,
    /// its per-CPU rings.
    pub fn new(ring: RingBuf, rings: Option<CpuRings>) -> KernelStreams {
        let rings = rings.map(|rings| Regions {
            bounds: vec![0; rings.cpus()],
            cursors: Vec::with_capacity(rings.cpus()),
            rings,
            ring_bound: 0,
            held: VecDeque::new(),
            corrupt: 0,
        });
        KernelStreams {
            ring,
            rings,
            watermark: 0,
        }
    }

    /// A time every kernel record older than which has been handed out by
    /// the last [`consume`](KernelStreams::consume): the clock before it,
    /// held back by a region a probe still writes and by a ring buffer
    /// that still had records pending (a probe preempted between its
    /// reservation and its submit). Another source merged with these (the
    /// in-process capture) may deliver its events up to here.
    pub fn handed_out_before(&self) -> u64 {
        self.watermark
    }

    /// Hands records to `f` in timestamp order (ring-buffer order without
    /// per-CPU rings), up to the watermark (every visible one when `last`:
    /// the probes are gone), until `f` returns `false`. Returns how many
    /// were handed out.
    pub fn consume(&mut self, last: bool, f: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let now = pytap_sys::clock::monotonic_ns().unwrap_or(0).max(0) as u64;
        let Some(regions) = &mut self.rings else {
            let n = self.ring.consume(f);
            if last || self.ring.pending_bytes() == 0 {
                self.watermark = if last { u64::MAX } else { now };
            }
            return n;
        };
        regions.look(now);
        let held = &mut regions.held;
        let copied = held.len();
        self.ring.consume(&mut |record| {
            held.push_back((timestamp(record), record.to_vec()));
            true
        });
        if held.len() > copied {
            held.make_contiguous().sort_by_key(|(ts, _)| *ts);
        }
        if self.ring.pending_bytes() == 0 {
            regions.ring_bound = now;
        }
        let watermark = if last {
            u64::MAX
        } else {
            regions
                .bounds
                .iter()
                .copied()
                .fold(regions.ring_bound, u64::min)
        };
        self.watermark = watermark;
        regions.merge(watermark, f)
    }

    /// The ring buffer's fd: readable (edge-triggered) when a probe forces
    /// a wakeup, as one does when its CPU's ring fills up.
    pub fn wakeup_fd(&self) -> i32 {
        self.ring.raw_fd()
    }

    /// Bytes written but not handed out yet.
    pub fn pending_bytes(&self) -> u64 {
        let regions = self.rings.as_ref().map_or(0, |r| {
            r.rings.pending_bytes() + r.held.iter().map(|(_, v)| v.len() as u64).sum::<u64>()
        });
        self.ring.pending_bytes() + regions
    }

    /// Regions found in a state the protocol cannot produce (their
    /// records up to the head were skipped).
    pub fn corrupt(&self) -> u64 {
        self.rings.as_ref().map_or(0, |r| r.corrupt)
    }
}

impl Regions {
    /// Looks at every region after the clock read `now`: its bound, and a
    /// cursor at its first record.
    fn look(&mut self, now: u64) {
        self.cursors.clear();
        for cpu in 0..self.rings.cpus() {
            let w = self.rings.window(cpu);
            let bound = if w.busy { w.pending } else { now };
            self.bounds[cpu] = self.bounds[cpu].max(bound);
            let mut pos = w.tail;
            if w.head < w.tail || w.head - w.tail > self.rings.capacity() as u64 {
                self.corrupt += 1;
                self.rings.release(cpu, w.head);
                pos = w.head;
            }
            let ts = self.ts_at(cpu, pos, w.head);
            self.cursors.push((pos, w.head, ts));
        }
    }

    /// The timestamp of the record at `pos` of `cpu`, `u64::MAX` at `head`.
    fn ts_at(&self, cpu: usize, pos: u64, head: u64) -> u64 {
        if pos >= head {
            return u64::MAX;
        }
        self.rings.record(cpu, pos).map_or(0, |(r, _)| timestamp(r))
    }

    /// Hands out records older than `watermark`, oldest first, from the
    /// regions and the held records; gives the regions' space back.
    fn merge(&mut self, watermark: u64, f: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let mut handed = 0;
        let mut go_on = true;
        while go_on {
            // The oldest source, and the next oldest: the oldest runs until
            // it reaches the other (one comparison per record while one CPU
            // does the writing).
            let held_ts = self.held.front().map_or(u64::MAX, |(ts, _)| *ts);
            let (mut best, mut best_ts, mut second_ts) = (None, held_ts.min(watermark), watermark);
            if held_ts < watermark {
                second_ts = held_ts;
            }
            for (cpu, &(_, _, ts)) in self.cursors.iter().enumerate() {
                if ts < best_ts {
                    second_ts = best_ts;
                    best_ts = ts;
                    best = Some(cpu);
                } else if ts < second_ts {
                    second_ts = ts;
                }
            }
            match best {
                None if held_ts < watermark => {
                    if let Some((_, record)) = self.held.pop_front() {
                        handed += 1;
                        go_on = f(&record);
                    }
                }
                None => break,
                Some(cpu) => {
                    // Its first record goes whatever the next source holds
                    // (a tie must not stall the merge), then those older
                    // than the next source's.
                    let (mut pos, head, _) = self.cursors[cpu];
                    let ts = loop {
                        match self.rings.record(cpu, pos) {
                            Some((record, next)) => {
                                handed += 1;
                                go_on = f(record);
                                pos = next;
                            }
                            None => {
                                self.corrupt += 1;
                                pos = head;
                            }
                        }
                        let ts = self.ts_at(cpu, pos, head);
                        if ts >= second_ts || !go_on {
                            break ts;
                        }
                    };
                    self.cursors[cpu] = (pos, head, ts);
                }
            }
        }
        for (cpu, &(pos, _, _)) in self.cursors.iter().enumerate() {
            self.rings.release(cpu, pos);
        }
        handed
    }
}
