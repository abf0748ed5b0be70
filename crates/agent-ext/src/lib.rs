//! `_pytap_agent`: the compiled callbacks of pytap's in-process agent.
//!
//! A CPython extension module on the stable ABI (3.12+), loaded by the
//! agent (`src/capture/agent.py` in pytap) from the capture directory. Its
//! `entry`, `ret` and `line` functions are registered as the
//! `sys.monitoring` callbacks; each writes one 32-byte record to the ring
//! file (the layout is pytap's `src/capture/ring.rs`) with no Python frame
//! and no allocation. What it does not know — a code object's names, an
//! instruction offset's line — it asks the agent's Python helpers once and
//! remembers. The ring, its tail and every record are written here only.
//!
//! Rules: a callback never raises into the program (an error of a helper
//! loses that event and is counted; only `KeyboardInterrupt`, `SystemExit`
//! and the like go on to the program, as they would have); it runs with
//! the GIL held and gives it up nowhere while it reserves, writes and
//! publishes a record, so threads cannot interleave inside one. Every
//! `unsafe` block says why it holds.

#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

use pytap_abi::capture as ring;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void};

pub mod ffi;
use ffi::*;
use std::ptr;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};


// ---- The ring (pytap's src/capture/ring.rs) ----

// The ring's layout is pytap's (crates/abi): header words by index, record
// kinds as the words they are packed into.
const HEADER_WORDS: usize = ring::word(ring::HEADER_BYTES);
const TAIL: usize = ring::word(ring::TAIL);
const HEAD: usize = ring::word(ring::HEAD);
const LOST: usize = ring::word(ring::LOST);
const BEAT: usize = ring::word(ring::BEAT);
const KIND_PAD: u64 = ring::KIND_PAD as u64;
const KIND_DEF: u64 = ring::KIND_DEF as u64;
const KIND_ENTRY: u64 = ring::KIND_ENTRY as u64;
const KIND_RETURN: u64 = ring::KIND_RETURN as u64;
const KIND_LINE: u64 = ring::KIND_LINE as u64;
use ring::{CHECK_EVERY, STALE_NS};

/// A multiply-and-fold hasher for the recorder's integer keys (addresses
/// and offsets): the default SipHash costs more than the rest of an event.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// What a code object is to the recorder: its id in the ring (0: the
/// agent's own code, not shown).
struct Code {
    cid: u32,
}

/// The process's recorder (one ring per process; a fork opens another).
struct Recorder {
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

/// The recorder, or none (closed). Only touched with the GIL held: every
/// entry point is a Python function CPython calls holding it, so two
/// threads never reach it at once (see [`slot`]).
struct Slot(UnsafeCell<Option<Recorder>>);

// SAFETY: accessed only with the GIL held (see `slot`).
unsafe impl Sync for Slot {}

static RECORDER: Slot = Slot(UnsafeCell::new(None));

/// Takes the recorder out of its slot, or puts one in.
fn slot() -> &'static mut Option<Recorder> {
    // SAFETY: every caller runs with the GIL held and keeps the reference
    // only for a take or a put (never across a call into Python), so no
    // two references are alive at once.
    unsafe { &mut *RECORDER.0.get() }
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

fn none() -> *mut PyObject {
    // SAFETY: None is immortal (3.12+); taking a reference is what a
    // function returning None does.
    unsafe {
        let p = ptr::addr_of_mut!(_Py_NoneStruct);
        Py_IncRef(p);
        p
    }
}

/// After a helper failed: an `Exception` loses the event (`true`); any
/// other exception (`KeyboardInterrupt`, `SystemExit`) goes on to the
/// program (`false`), as it would have untraced.
fn swallow_error() -> bool {
    // SAFETY: called with the GIL held, after a call that set an error.
    unsafe {
        if PyErr_Occurred().is_null() {
            return true;
        }
        if PyErr_ExceptionMatches(PyExc_Exception) != 0 {
            PyErr_Clear();
            return true;
        }
        false
    }
}

impl Recorder {
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

    /// The code object's entry, writing its def record the first time.
    /// `Err(())`: a helper raised something that is not an `Exception`.
    fn code(&mut self, code: *mut PyObject) -> Result<Option<u32>, ()> {
        if let Some(c) = self.codes.get(&(code as usize)) {
            return Ok(Some(c.cid));
        }
        // SAFETY: `describe` is a live callable (kept by `set_helpers`),
        // `code` a live code object (the callback's argument); the GIL is
        // held.
        let info = unsafe {
            PyObject_CallFunctionObjArgs(self.describe, code, ptr::null_mut::<PyObject>())
        };
        if info.is_null() {
            return if swallow_error() { Ok(None) } else { Err(()) };
        }
        let none = none();
        let own = info == none;
        // SAFETY: both are references this function owns.
        unsafe { Py_DecRef(none) };
        let cid = if own {
            0
        } else {
            self.next_cid += 1;
            self.next_cid
        };
        if !own && !self.write_def(cid, info) {
            // SAFETY: `info` is owned here.
            unsafe { Py_DecRef(info) };
            return Ok(None);
        }
        // SAFETY: `info` is owned here; `code` gets the reference that
        // keeps its address its own while the recorder lives.
        unsafe {
            Py_DecRef(info);
            Py_IncRef(code);
        }
        self.codes.insert(code as usize, Code { cid });
        Ok(Some(cid))
    }

    /// Writes a def record from `describe`'s (file name, name, first line).
    fn write_def(&mut self, cid: u32, info: *mut PyObject) -> bool {
        let mut parts: [(*mut c_char, isize); 2] = [(ptr::null_mut(), 0); 2];
        for (i, part) in parts.iter_mut().enumerate() {
            // SAFETY: `info` is a tuple the agent built; GetItem borrows,
            // AsStringAndSize points into the bytes object it borrows.
            let ok = unsafe {
                let item = PyTuple_GetItem(info, i as isize);
                !item.is_null() && PyBytes_AsStringAndSize(item, &mut part.0, &mut part.1) == 0
            };
            if !ok {
                swallow_error();
                return false;
            }
        }
        // SAFETY: as above.
        let first = unsafe { PyLong_AsLongLong(PyTuple_GetItem(info, 2)) } as i32;
        swallow_error();
        let (flen, nlen) = (parts[0].1.clamp(0, 4096) as usize, parts[1].1.clamp(0, 4096) as usize);
        let length = (24 + flen + nlen).div_ceil(32) * 32;
        let n = (length / 8) as u64;
        let Some(at) = self.reserve(n) else {
            return false;
        };
        let mut bytes = vec![0u8; length];
        bytes[..4].copy_from_slice(&(length as u32).to_le_bytes());
        bytes[4..6].copy_from_slice(&(KIND_DEF as u16).to_le_bytes());
        bytes[6..8].copy_from_slice(&(flen as u16).to_le_bytes());
        bytes[8..12].copy_from_slice(&cid.to_le_bytes());
        bytes[12..16].copy_from_slice(&first.to_le_bytes());
        bytes[16..18].copy_from_slice(&(nlen as u16).to_le_bytes());
        // SAFETY: the two byte strings are `flen` and `nlen` long (clamped
        // to what they hold), borrowed from `info`, which is alive.
        unsafe {
            ptr::copy_nonoverlapping(parts[0].0 as *const u8, bytes[24..].as_mut_ptr(), flen);
            ptr::copy_nonoverlapping(parts[1].0 as *const u8, bytes[24 + flen..].as_mut_ptr(), nlen);
        }
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            self.set(at + i, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        self.publish(n);
        true
    }

    /// The record's second word for `offset` of `code` (`cid` its id).
    fn second_word(&mut self, code: *mut PyObject, cid: u32, offset: i64) -> Result<Option<u64>, ()> {
        if let Some(w) = self.words_of.get(&(code as usize, offset)) {
            return Ok(Some(*w));
        }
        // SAFETY: helper and code are live; the GIL is held; the offset
        // object is a new reference handed over and released here.
        let line = unsafe {
            let off = PyLong_FromLongLong(offset);
            if off.is_null() {
                return if swallow_error() { Ok(None) } else { Err(()) };
            }
            let r = PyObject_CallFunctionObjArgs(self.line_of, code, off, ptr::null_mut::<PyObject>());
            Py_DecRef(off);
            if r.is_null() {
                return if swallow_error() { Ok(None) } else { Err(()) };
            }
            let line = PyLong_AsLongLong(r);
            Py_DecRef(r);
            line
        };
        swallow_error();
        let word = u64::from(cid) | ((line as u64) & 0xFFFF_FFFF) << 32;
        self.words_of.insert((code as usize, offset), word);
        Ok(Some(word))
    }

    /// Records one event; `Err(())`: an exception goes on to the program.
    fn record(&mut self, kind: u64, code: *mut PyObject, offset: Option<i64>, line: i64) -> Result<(), ()> {
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

    /// The second word when the code or the offset is new: `None` when
    /// the event is not recorded (the agent's own code, or lost).
    fn slow_word(&mut self, code: *mut PyObject, offset: Option<i64>, line: i64) -> Result<Option<u64>, ()> {
        let Some(cid) = self.code(code)? else {
            self.drop_event();
            return Ok(None);
        };
        if cid == 0 {
            if let Some(off) = offset {
                // Remembered with id 0: skipped by the fast path.
                self.words_of.insert((code as usize, off), 0);
            }
            return Ok(None);
        }
        let word = match offset {
            Some(off) => match self.second_word(code, cid, off)? {
                Some(w) => w,
                None => {
                    self.drop_event();
                    return Ok(None);
                }
            },
            None => u64::from(cid) | ((line as u64) & 0xFFFF_FFFF) << 32,
        };
        Ok(Some(word))
    }

    fn close(&mut self) {
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

/// Reads a `str` argument as a NUL-terminated path.
fn path_arg(o: *mut PyObject) -> Option<Vec<u8>> {
    let mut len: isize = 0;
    // SAFETY: `o` is an argument CPython passes; the UTF-8 buffer is the
    // string's own, copied before anything else runs.
    let p = unsafe { PyUnicode_AsUTF8AndSize(o, &mut len) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` points to `len` bytes.
    let mut v = unsafe { std::slice::from_raw_parts(p as *const u8, len as usize) }.to_vec();
    v.push(0);
    Some(v)
}

fn value_error(msg: &'static [u8]) -> *mut PyObject {
    // SAFETY: a NUL-terminated message; the GIL is held.
    unsafe { PyErr_SetString(PyExc_ValueError, msg.as_ptr() as *const c_char) };
    ptr::null_mut()
}

/// `open(path, size, describe, line_of, stale)`: maps the ring file the
/// agent made (header written, `size` bytes of records) and takes the
/// helpers. A recorder already open (the parent's, after a fork) is
/// replaced.
unsafe extern "C" fn py_open(_m: *mut PyObject, args: *const *mut PyObject, n: isize) -> *mut PyObject {
    if n != 5 {
        return value_error(b"open(path, size, describe, line_of, stale)\0");
    }
    // SAFETY: CPython passes `n` arguments.
    let args = unsafe { std::slice::from_raw_parts(args, n as usize) };
    let Some(path) = path_arg(args[0]) else {
        return ptr::null_mut();
    };
    // SAFETY: an int argument.
    let size = unsafe { PyLong_AsLongLong(args[1]) };
    if size <= 0 || (size & (size - 1)) != 0 {
        return value_error(b"the ring size must be a power of two\0");
    }
    let len_bytes = HEADER_WORDS * 8 + size as usize;
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { open(path.as_ptr() as *const c_char, O_RDWR | O_CLOEXEC) };
    if fd < 0 {
        return value_error(b"cannot open the ring\0");
    }
    // SAFETY: a shared mapping of the whole file, which the agent sized.
    let map = unsafe {
        mmap(ptr::null_mut(), len_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    };
    // SAFETY: the descriptor opened above; the mapping outlives it.
    unsafe { close(fd) };
    if map == MAP_FAILED {
        return value_error(b"cannot map the ring\0");
    }
    for f in &args[2..5] {
        // SAFETY: the helpers are kept until `close`.
        unsafe { Py_IncRef(*f) };
    }
    let old = slot().take();
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    if let Some(mut old) = old {
        old.close();
    }
    *slot() = Some(Recorder {
        words: map as *mut u64,
        len: len_bytes / 8,
        capacity: size as u64 / 8,
        codes: FastMap::default(),
        words_of: FastMap::default(),
        next_cid: 0,
        countdown: CHECK_EVERY,
        lost: 0,
        beat: 0,
        beat_seen: now_ns(),
        describe: args[2],
        line_of: args[3],
        stale: args[4],
        generation,
    });
    none()
}

/// Set by `close` while a callback has the recorder out (a helper it
/// called stopped the agent): the callback closes it when done.
static CLOSE_PENDING: AtomicBool = AtomicBool::new(false);

/// Generations of recorders (a fork's child starts a new one, so its
/// threads learn their ids again).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `close()`: unmaps the ring and lets go of everything.
unsafe extern "C" fn py_close(_m: *mut PyObject, _args: *const *mut PyObject, _n: isize) -> *mut PyObject {
    let taken = slot().take();
    match taken {
        Some(mut r) => r.close(),
        None => CLOSE_PENDING.store(true, Ordering::Relaxed),
    }
    none()
}

/// Runs `f` on the recorder (taken out meanwhile: a helper it calls may
/// `close` it); nothing when there is none (closed).
fn with_recorder(f: impl FnOnce(&mut Recorder) -> Result<(), ()>) -> *mut PyObject {
    let taken = slot().take();
    let Some(mut r) = taken else {
        return none();
    };
    CLOSE_PENDING.store(false, Ordering::Relaxed);
    let result = f(&mut r);
    if CLOSE_PENDING.swap(false, Ordering::Relaxed) {
        r.close();
    } else {
        match slot() {
            // A helper opened another ring meanwhile: this one is done.
            Some(_) => r.close(),
            empty => *empty = Some(r),
        }
    }
    match result {
        Ok(()) => none(),
        Err(()) => ptr::null_mut(),
    }
}

fn offset_arg(o: *mut PyObject) -> Option<i64> {
    // SAFETY: an int argument (an instruction offset or a line).
    let v = unsafe { PyLong_AsLongLong(o) };
    if v == -1 && !swallow_error() {
        return None;
    }
    Some(v)
}

macro_rules! callback {
    ($name:ident, $kind:expr, $min:expr, $by_line:expr) => {
        unsafe extern "C" fn $name(
            _m: *mut PyObject,
            args: *const *mut PyObject,
            n: isize,
        ) -> *mut PyObject {
            if n < $min {
                return none();
            }
            // SAFETY: CPython passes `n` arguments.
            let args = unsafe { std::slice::from_raw_parts(args, n as usize) };
            let Some(value) = offset_arg(args[1]) else {
                return ptr::null_mut();
            };
            with_recorder(|r| {
                if $by_line {
                    r.record($kind, args[0], None, value)
                } else {
                    r.record($kind, args[0], Some(value), 0)
                }
            })
        }
    };
}

callback!(py_entry, KIND_ENTRY, 2, false);
callback!(py_return, KIND_RETURN, 2, false);
callback!(py_line, KIND_LINE, 2, true);

static mut METHODS: [PyMethodDef; 6] = [
    PyMethodDef {
        ml_name: c"open".as_ptr(),
        ml_meth: py_open as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"close".as_ptr(),
        ml_meth: py_close as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"entry".as_ptr(),
        ml_meth: py_entry as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"ret".as_ptr(),
        ml_meth: py_return as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"line".as_ptr(),
        ml_meth: py_line as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: ptr::null(),
        ml_meth: ptr::null_mut(),
        ml_flags: 0,
        ml_doc: ptr::null(),
    },
];

static mut MODULE: PyModuleDef = PyModuleDef {
    m_base: PyModuleDef_Base {
        ob_base: PyObject {
            ob_refcnt: 1,
            ob_type: ptr::null_mut(),
        },
        m_init: None,
        m_index: 0,
        m_copy: ptr::null_mut(),
    },
    m_name: c"_pytap_agent".as_ptr(),
    m_doc: ptr::null(),
    m_size: -1,
    m_methods: ptr::null_mut(),
    m_slots: ptr::null_mut(),
    m_traverse: ptr::null_mut(),
    m_clear: ptr::null_mut(),
    m_free: ptr::null_mut(),
};

/// The module's entry point, as CPython looks it up.
///
/// # Safety
/// Called by CPython's import machinery with the GIL held, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit__pytap_agent() -> *mut PyObject {
    // SAFETY: the statics are touched here only, before the module exists,
    // under the import lock; CPython keeps the pointers for the module's life.
    unsafe {
        let module = ptr::addr_of_mut!(MODULE);
        (*module).m_methods = ptr::addr_of_mut!(METHODS) as *mut PyMethodDef;
        PyModule_Create2(module, PYTHON_ABI_VERSION)
    }
}
