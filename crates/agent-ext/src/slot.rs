//! Where the process's recorder lives between calls, and how a callback
//! takes it out for the length of an event (a helper it calls may close
//! the recorder, or open another).

use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ffi::*;
use crate::python::none;
use crate::recorder::Recorder;

/// The recorder, or none (closed). Only touched with the GIL held: every
/// entry point is a Python function CPython calls holding it, so two
/// threads never reach it at once (see [`slot`]).
struct Slot(UnsafeCell<Option<Recorder>>);

// SAFETY: accessed only with the GIL held (see `slot`).
unsafe impl Sync for Slot {}

static RECORDER: Slot = Slot(UnsafeCell::new(None));

/// Takes the recorder out of its slot, or puts one in.
pub(crate) fn slot() -> &'static mut Option<Recorder> {
    // SAFETY: every caller runs with the GIL held and keeps the reference
    // only for a take or a put (never across a call into Python), so no
    // two references are alive at once.
    unsafe { &mut *RECORDER.0.get() }
}

/// Set by `close` while a callback has the recorder out (a helper it
/// called stopped the agent): the callback closes it when done.
pub(crate) static CLOSE_PENDING: AtomicBool = AtomicBool::new(false);

/// Set while a callback has the recorder out: a mark made meanwhile (by
/// a gc callback a helper's allocation ran) waits for it
/// (`recorder::defer_mark`).
pub(crate) static OUT: AtomicBool = AtomicBool::new(false);

/// Generations of recorders (a fork's child starts a new one, so its
/// threads learn their ids again).
pub(crate) static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runs `f` on the recorder (taken out meanwhile: a helper it calls may
/// `close` it); nothing when there is none (closed).
pub(crate) fn with_recorder(f: impl FnOnce(&mut Recorder) -> Result<(), ()>) -> *mut PyObject {
    let taken = slot().take();
    let Some(mut r) = taken else {
        return none();
    };
    CLOSE_PENDING.store(false, Ordering::Relaxed);
    OUT.store(true, Ordering::Relaxed);
    let result = f(&mut r);
    OUT.store(false, Ordering::Relaxed);
    r.write_deferred();
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
