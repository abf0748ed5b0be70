//! The recorder: one process's writer of the capture ring. It reserves
//! room at the tail (waiting a little for pytap, then counting the event
//! lost), writes a record and publishes it, watches pytap's heartbeat, and
//! lets go of the ring and everything it holds when closed.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::ffi::c_void;
use std::ptr;

use pytap_abi::capture as ring;

use crate::ffi::*;
use crate::hash::FastMap;
use crate::python::swallow_error;

mod codes;

use crate::{BEAT, HEAD, HEADER_WORDS, KIND_PAD, LOST, TAIL};
use ring::{CHECK_EVERY, STALE_NS};

/// What a code object is to the recorder: its id in the ring (0: the
/// agent's own code, not shown).
struct Code {
    cid: u32,
}

/// The process's recorder (one ring per process; a fork opens another).
pub(crate) struct Recorder {
    /// The mapped file, in 8-byte words.
    words: *mut u64,
    len: usize,
    capacity: u64,
    /// Code objects by address, each kept alive (a strong reference) so
    /// an address is never another code's.
    codes: FastMap<usize, Code>,
    /// (code address, instruction offset) to the record's second word.
    words_of: FastMap<(usize, i64), u64>,
    next_cid: u32,
    countdown: u32,
    lost: u64,
    beat: u64,
    beat_seen: u64,
    /// Python helpers: `describe(code)` -> (file name bytes, name bytes,
    /// first line) or None; `line_of(code, offset)` -> int; `stale()`.
    describe: *mut PyObject,
    line_of: *mut PyObject,
    stale: *mut PyObject,
    /// Bumped by every `open`: a forked child's threads learn their ids again.
    generation: u64,
}

/// The agent's Python helpers a recorder calls (see [`Recorder`]'s fields).
pub(crate) struct Helpers {
    pub(crate) describe: *mut PyObject,
    pub(crate) line_of: *mut PyObject,
    pub(crate) stale: *mut PyObject,
}

thread_local! {
    /// (generation, native thread id) of the calling thread.
    static TID: Cell<(u64, u32)> = const { Cell::new((u64::MAX, 0)) };
    /// Marks made while the recorder was out (see [`defer_mark`]).
    static DEFERRED: RefCell<Vec<Deferred>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`DEFERRED`] may hold marks (a cheap look for every event).
static ANY_DEFERRED: AtomicBool = AtomicBool::new(false);

/// Marks kept, at most, while the recorder is out.
const DEFERRED_MAX: usize = 4096;

/// A gc, import or audit record made while the recorder was out of its
/// slot: a collection run by an allocation in a Python helper the
/// recorder called (a code object's first event). Written, with its own
/// time, as soon as the recorder is back.
struct Deferred {
    kind: u64,
    value: i64,
    ts: u64,
    tid: u32,
    payload: Vec<u8>,
}

/// Keeps a mark for the recorder, which is out (`generation`: its
/// threads' ids); `false` when too many wait already (it is lost).
pub(crate) fn defer_mark(kind: u64, value: i64, payload: &[u8], generation: u64) -> bool {
    let mark = Deferred {
        kind,
        value,
        ts: now_ns(),
        tid: thread_id(generation),
        payload: payload.to_vec(),
    };
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if d.len() >= DEFERRED_MAX {
            return false;
        }
        d.push(mark);
        ANY_DEFERRED.store(true, Ordering::Relaxed);
        true
    })
}

fn now_ns() -> u64 {
    let mut ts = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, which lives
    // on this stack frame.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn thread_id(generation: u64) -> u32 {
    TID.with(|c| {
        let (g, tid) = c.get();
        if g == generation {
            return tid;
        }
        // SAFETY: gettid takes no argument and cannot fail.
        let tid = unsafe { syscall(SYS_GETTID) } as u32;
        c.set((generation, tid));
        tid
    })
}

impl Recorder {
    /// A recorder writing into the ring mapped at `words` (`len_bytes`,
    /// the header and `size` bytes of records), with the agent's
    /// helpers (their references now its own).
    pub(crate) fn new(words: *mut u64, len_bytes: usize, size: u64, helpers: Helpers, generation: u64) -> Recorder {
        Recorder {
            words,
            len: len_bytes / 8,
            capacity: size / 8,
            codes: FastMap::default(),
            words_of: FastMap::default(),
            next_cid: 0,
            countdown: CHECK_EVERY,
            lost: 0,
            beat: 0,
            beat_seen: now_ns(),
            describe: helpers.describe,
            line_of: helpers.line_of,
            stale: helpers.stale,
            generation,
        }
    }

    fn word(&self, i: usize) -> u64 {
        debug_assert!(i < self.len);
        // SAFETY: `i` is within the mapping (header indices and data
        // indices below `HEADER_WORDS + capacity`), which stays mapped
        // until `close`, and the GIL serialises every access from Python.
        unsafe { self.words.add(i).read_volatile() }
    }

    fn set(&self, i: usize, v: u64) {
        debug_assert!(i < self.len);
        // SAFETY: as in `word`; volatile so the stores reach the shared
        // page in program order (x86 keeps stores in order) for pytap.
        unsafe { self.words.add(i).write_volatile(v) }
    }

    fn drop_event(&mut self) {
        self.lost += 1;
        self.set(LOST, self.lost);
    }

    /// Whether pytap's heartbeat is fresh.
    fn alive(&mut self) -> bool {
        let beat = self.word(BEAT);
        if beat == u64::MAX {
            return false;
        }
        let now = now_ns();
        if beat != self.beat {
            self.beat = beat;
            self.beat_seen = now;
            return true;
        }
        now - self.beat_seen < STALE_NS
    }

    /// Makes room for `n` words at the tail (a pad first if they would
    /// cross the end), waiting up to 0.1 s for pytap; `None`: lost.
    fn reserve(&mut self, n: u64) -> Option<usize> {
        let mut waited = 0;
        loop {
            let tail = self.word(TAIL) >> 3;
            let head = self.word(HEAD) >> 3;
            let pos = tail % self.capacity;
            let pad = if pos + n > self.capacity {
                self.capacity - pos
            } else {
                0
            };
            if tail + pad + n - head <= self.capacity {
                if pad > 0 {
                    self.set(HEADER_WORDS + pos as usize, (pad << 3) | (KIND_PAD << 32));
                    self.set(TAIL, (tail + pad) << 3);
                    return Some(HEADER_WORDS);
                }
                return Some(HEADER_WORDS + pos as usize);
            }
            if waited >= 200 || !self.alive() {
                self.drop_event();
                return None;
            }
            let half_ms = timespec {
                tv_sec: 0,
                tv_nsec: 500_000,
            };
            // SAFETY: nanosleep reads the timespec on this stack frame.
            unsafe { nanosleep(&half_ms, ptr::null_mut()) };
            waited += 1;
        }
    }

    fn publish(&self, n: u64) {
        let tail = self.word(TAIL);
        self.set(TAIL, tail + (n << 3));
    }

    /// Whether pytap's heartbeat is fresh; when not, the agent is told
    /// (`stale`: it unregisters the callbacks and calls `close`).
    fn pytap_alive(&mut self) -> bool {
        if self.alive() {
            return true;
        }
        // SAFETY: `stale` is a live callable; the GIL is held.
        let r = unsafe { PyObject_CallFunctionObjArgs(self.stale, ptr::null_mut::<PyObject>()) };
        if r.is_null() {
            swallow_error();
        } else {
            // SAFETY: owned result.
            unsafe { Py_DecRef(r) };
        }
        false
    }

    /// Records one event; `Err(())`: an exception goes on to the program.
    pub(crate) fn record(&mut self, kind: u64, code: *mut PyObject, offset: Option<i64>, line: i64) -> Result<(), ()> {
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown == 0 {
            self.countdown = CHECK_EVERY;
            if !self.pytap_alive() {
                return Ok(());
            }
        }
        // The common case: a known code at a known offset, one lookup.
        let known = offset.and_then(|off| self.words_of.get(&(code as usize, off)).copied());
        let word = if let Some(w) = known {
            if w & 0xFFFF_FFFF == 0 {
                return Ok(());
            }
            w
        } else {
            let word = self.slow_word(code, offset, line);
            // A collection the helpers' allocations ran comes before.
            self.write_deferred();
            match word? {
                Some(w) => w,
                None => return Ok(()),
            }
        };
        let tid = thread_id(self.generation);
        let ts = now_ns();
        let Some(at) = self.reserve(4) else {
            return Ok(());
        };
        self.set(at, 32 | kind << 32);
        self.set(at + 1, word);
        self.set(at + 2, ts);
        self.set(at + 3, u64::from(tid));
        self.publish(4);
        Ok(())
    }

    /// Records one gc, import or audit event: `MARK_BYTES` of header,
    /// then `payload` (padded to 8 bytes). These are rare: pytap's
    /// heartbeat is looked at for each.
    pub(crate) fn mark(&mut self, kind: u64, value: i64, payload: &[u8]) {
        if !self.pytap_alive() {
            return;
        }
        let tid = thread_id(self.generation);
        let ts = now_ns();
        self.write_mark(kind, value, ts, tid, payload);
    }

    /// The marks made while this recorder was out, in their order.
    pub(crate) fn write_deferred(&mut self) {
        if !ANY_DEFERRED.swap(false, Ordering::Relaxed) {
            return;
        }
        let marks = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
        for m in marks {
            self.write_mark(m.kind, m.value, m.ts, m.tid, &m.payload);
        }
    }

    fn write_mark(&mut self, kind: u64, value: i64, ts: u64, tid: u32, payload: &[u8]) {
        let words = (ring::MARK_BYTES + payload.len()).div_ceil(8) as u64;
        if words > self.capacity {
            self.drop_event();
            return;
        }
        let Some(at) = self.reserve(words) else {
            return;
        };
        self.set(at, (words << 3) | kind << 32);
        self.set(at + 1, value as u64);
        self.set(at + 2, ts);
        self.set(at + 3, u64::from(tid) | (payload.len() as u64) << 32);
        for (i, chunk) in payload.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.set(at + 4 + i, u64::from_le_bytes(w));
        }
        self.publish(words);
    }

    pub(crate) fn close(&mut self) {
        for &code in self.codes.keys() {
            // SAFETY: the reference taken in `code()`; the GIL is held.
            unsafe { Py_DecRef(code as *mut PyObject) };
        }
        self.codes.clear();
        // SAFETY: the mapping made by `open`, no longer used after this.
        unsafe { munmap(self.words as *mut c_void, self.len * 8) };
        for f in [self.describe, self.line_of, self.stale] {
            if !f.is_null() {
                // SAFETY: references taken by `set_helpers`.
                unsafe { Py_DecRef(f) };
            }
        }
    }
}
