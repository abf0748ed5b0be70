//! The recorder: one process's writer of the capture ring. It reserves
//! room at the tail (waiting a little for pytap, then counting the event
//! lost), writes a record and publishes it, watches pytap's heartbeat, and
//! lets go of the ring and everything it holds when closed.

use std::cell::Cell;
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

    /// Records one event; `Err(())`: an exception goes on to the program.
    pub(crate) fn record(&mut self, kind: u64, code: *mut PyObject, offset: Option<i64>, line: i64) -> Result<(), ()> {
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown == 0 {
            self.countdown = CHECK_EVERY;
            if !self.alive() {
                // SAFETY: `stale` is a live callable; the GIL is held. It
                // unregisters the callbacks and calls `close`.
                let r = unsafe { PyObject_CallFunctionObjArgs(self.stale, ptr::null_mut::<PyObject>()) };
                if r.is_null() {
                    swallow_error();
                } else {
                    // SAFETY: owned result.
                    unsafe { Py_DecRef(r) };
                }
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
            match self.slow_word(code, offset, line)? {
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
