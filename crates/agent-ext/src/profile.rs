//! 3.8–3.11, which have no `sys.monitoring`: a compiled profile function
//! (`PyEval_SetProfile`, the C level of `sys.setprofile`) that records calls
//! and returns as the monitoring callbacks do, with no Python frame and no
//! audited read (a frame's `f_code` read from Python is one).
//!
//! `PyEval_SetProfile`, `PyFrame_GetCode` and `PyFrame_GetBack` are not in
//! the stable ABI: they are looked up when the agent starts (a build
//! without them keeps the Python profile function), and on 3.8, which has
//! no `PyFrame_GetCode`, a frame's code and caller are read at the offsets
//! of its `PyFrameObject` (after the variable-size header: `f_back`, then
//! `f_code`). The function is set for the thread that starts the agent;
//! `thread` (given to `threading.setprofile`) sets it for each thread
//! started later at its first event, and gives the frames already running
//! there their entries first.

use std::ffi::{c_char, c_int, c_long, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use crate::ffi::*;
use crate::python::{none, swallow_error, value_error};
use crate::slot::with_recorder;
use crate::{KIND_ENTRY, KIND_RETURN};

/// `Py_tracefunc`.
type TraceFunc = unsafe extern "C" fn(*mut PyObject, *mut c_void, c_int, *mut PyObject) -> c_int;
type SetProfile = unsafe extern "C" fn(Option<TraceFunc>, *mut PyObject);
type FrameGet = unsafe extern "C" fn(*mut c_void) -> *mut PyObject;
type FrameLine = unsafe extern "C" fn(*mut c_void) -> c_int;

const PYTRACE_CALL: c_int = 0;
const PYTRACE_RETURN: c_int = 3;

/// The C API functions looked up at start (null: not yet, or absent).
static SET_PROFILE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static GET_CODE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static GET_BACK: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static GET_LINE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
/// The interpreter's minor version (8 to 11).
static MINOR: AtomicU32 = AtomicU32::new(0);
/// What is recorded: bit 0 entries, bit 1 returns.
static WANTED: AtomicU32 = AtomicU32::new(3);
/// Set by `profile_stop`: each thread's function removes itself at its
/// next event.
static STOPPED: AtomicBool = AtomicBool::new(false);
/// The code whose calls and returns go to the agent's `watched` helper
/// too (the imports' `_find_and_load`), and that helper (references kept
/// from `profile_start` on).
static WATCHED_CODE: AtomicPtr<PyObject> = AtomicPtr::new(ptr::null_mut());
static WATCHED: AtomicPtr<PyObject> = AtomicPtr::new(ptr::null_mut());
/// A watched frame called from this code is said to be (`_gcd_import`).
static HIDE_UNDER: AtomicPtr<PyObject> = AtomicPtr::new(ptr::null_mut());

fn lookup(name: &[u8]) -> *mut c_void {
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the process's
    // global symbols, where the interpreter's are.
    unsafe { dlsym(RTLD_DEFAULT, name.as_ptr() as *const c_char) }
}

/// The frame's code object, a new reference (null: none).
fn code_of(frame: *mut c_void) -> *mut PyObject {
    let get = GET_CODE.load(Ordering::Relaxed);
    if !get.is_null() {
        // SAFETY: `PyFrame_GetCode`, looked up by name; `frame` is the
        // live frame CPython passed.
        return unsafe { std::mem::transmute::<*mut c_void, FrameGet>(get)(frame) };
    }
    // 3.8: `f_code` after `ob_refcnt`, `ob_type`, `ob_size` and `f_back`.
    // SAFETY: a 3.8 `PyFrameObject` (MINOR says so), whose code is set
    // for the frame's life; the reference taken is given to the caller.
    unsafe {
        let code = (frame as *const *mut PyObject).add(4).read();
        if !code.is_null() {
            Py_IncRef(code);
        }
        code
    }
}

/// The frame's caller, a new reference (null: none).
fn back_of(frame: *mut c_void) -> *mut c_void {
    let get = GET_BACK.load(Ordering::Relaxed);
    if !get.is_null() {
        // SAFETY: `PyFrame_GetBack`, looked up by name; a live frame.
        return unsafe { std::mem::transmute::<*mut c_void, FrameGet>(get)(frame) } as *mut c_void;
    }
    // SAFETY: a 3.8 `PyFrameObject`: `f_back` after the header.
    unsafe {
        let back = (frame as *const *mut PyObject).add(3).read();
        if !back.is_null() {
            Py_IncRef(back);
        }
        back as *mut c_void
    }
}

fn line_of(frame: *mut c_void) -> i64 {
    let get = GET_LINE.load(Ordering::Relaxed);
    if get.is_null() {
        return 0;
    }
    // SAFETY: `PyFrame_GetLineNumber`, looked up by name; a live frame.
    i64::from(unsafe { std::mem::transmute::<*mut c_void, FrameLine>(get)(frame) })
}

fn set_profile(on: bool) {
    let set = SET_PROFILE.load(Ordering::Relaxed);
    if set.is_null() {
        return;
    }
    // SAFETY: `PyEval_SetProfile`, looked up by name, called with the GIL
    // held (every caller is a profile or module function CPython calls).
    unsafe {
        std::mem::transmute::<*mut c_void, SetProfile>(set)(
            if on { Some(on_event) } else { None },
            ptr::null_mut(),
        )
    }
}

/// A code's first line (`co_firstlineno`): a C-level attribute read,
/// which is not audited as a frame's is.
fn first_line(code: *mut PyObject) -> i64 {
    // SAFETY: a live code object; the GIL is held; the result is owned.
    unsafe {
        let v = PyObject_GetAttrString(code, c"co_firstlineno".as_ptr());
        if v.is_null() {
            PyErr_Clear();
            return 0;
        }
        let line = PyLong_AsLongLong(v);
        Py_DecRef(v);
        if line == -1 {
            PyErr_Clear();
        }
        line
    }
}

/// The profile function: a call is an entry, a return (an exception's
/// included) a return, as the markers of these versions give them.
unsafe extern "C" fn on_event(_obj: *mut PyObject, frame: *mut c_void, what: c_int, arg: *mut PyObject) -> c_int {
    if STOPPED.load(Ordering::Relaxed) {
        set_profile(false);
        return 0;
    }
    let (kind, bit) = match what {
        PYTRACE_CALL => (KIND_ENTRY, 1),
        PYTRACE_RETURN => (KIND_RETURN, 2),
        _ => return 0,
    };
    let code = code_of(frame);
    if code.is_null() {
        return 0;
    }
    let watched = WATCHED_CODE.load(Ordering::Relaxed);
    if code == watched && !tell_watched(frame, what, arg) {
        // SAFETY: the reference `code_of` gave.
        unsafe { Py_DecRef(code) };
        return -1;
    }
    if WANTED.load(Ordering::Relaxed) & bit == 0 {
        // SAFETY: the reference `code_of` gave.
        unsafe { Py_DecRef(code) };
        return 0;
    }
    let line = line_of(frame);
    let r = with_recorder(|r| r.record(kind, code, None, line));
    // SAFETY: the reference `code_of` gave (the recorder took its own).
    unsafe { Py_DecRef(code) };
    finish(r)
}

/// A module function's result as a profile function's status.
fn finish(r: *mut PyObject) -> c_int {
    if r.is_null() {
        return -1;
    }
    // SAFETY: the owned None `with_recorder` returned.
    unsafe { Py_DecRef(r) };
    0
}

/// `watched(frame, is_call, value, hidden)`: the agent's helper for the
/// watched code (`hidden`: called from `HIDE_UNDER`'s code); `false`: it
/// raised what goes on to the program.
fn tell_watched(frame: *mut c_void, what: c_int, arg: *mut PyObject) -> bool {
    let helper = WATCHED.load(Ordering::Relaxed);
    if helper.is_null() {
        return true;
    }
    let mut hidden = false;
    if what == PYTRACE_CALL {
        let back = back_of(frame);
        if !back.is_null() {
            let code = code_of(back);
            hidden = !code.is_null() && code == HIDE_UNDER.load(Ordering::Relaxed);
            // SAFETY: the references `back_of` and `code_of` gave.
            unsafe {
                if !code.is_null() {
                    Py_DecRef(code);
                }
                Py_DecRef(back as *mut PyObject);
            }
        }
    }
    // SAFETY: the helper is kept alive from `profile_start`; the frame and
    // `arg` (null or a borrowed object) are CPython's; the GIL is held.
    unsafe {
        let flag = PyBool_FromLong(c_long::from(what == PYTRACE_CALL));
        let under = PyBool_FromLong(c_long::from(hidden));
        let value = if arg.is_null() { ptr::addr_of_mut!(_Py_NoneStruct) } else { arg };
        let r = PyObject_CallFunctionObjArgs(
            helper,
            frame as *mut PyObject,
            flag,
            value,
            under,
            ptr::null_mut::<PyObject>(),
        );
        Py_DecRef(flag);
        Py_DecRef(under);
        if r.is_null() {
            return swallow_error();
        }
        Py_DecRef(r);
    }
    true
}

/// `profile_start(minor, watched_code, watched, hide_under, wanted)`
/// (`wanted`: bit 0 entries, bit 1 returns): looks the C API up and
/// sets the profile function for this thread; `False` when this
/// interpreter lacks what it needs (the agent's Python one then works).
pub(crate) unsafe extern "C" fn py_profile_start(_m: *mut PyObject, args: *const *mut PyObject, n: isize) -> *mut PyObject {
    if n != 5 {
        return value_error(b"profile_start(minor, watched_code, watched, hide_under, wanted)\0");
    }
    // SAFETY: CPython passes `n` arguments.
    let args = unsafe { std::slice::from_raw_parts(args, n as usize) };
    // SAFETY: an int argument.
    let minor = unsafe { PyLong_AsLongLong(args[0]) };
    let set = lookup(b"PyEval_SetProfile\0");
    let get_line = lookup(b"PyFrame_GetLineNumber\0");
    let (get_code, get_back) = (lookup(b"PyFrame_GetCode\0"), lookup(b"PyFrame_GetBack\0"));
    let usable = !set.is_null()
        && !get_line.is_null()
        && match minor {
            8 => true,
            9..=11 => !get_code.is_null() && !get_back.is_null(),
            _ => false,
        };
    // SAFETY: a new reference to True or False, handed to the caller.
    let answer = |yes: bool| unsafe { PyBool_FromLong(c_long::from(yes)) };
    if !usable {
        return answer(false);
    }
    SET_PROFILE.store(set, Ordering::Relaxed);
    GET_LINE.store(get_line, Ordering::Relaxed);
    if minor != 8 {
        GET_CODE.store(get_code, Ordering::Relaxed);
        GET_BACK.store(get_back, Ordering::Relaxed);
    }
    MINOR.store(minor as u32, Ordering::Relaxed);
    // SAFETY: an int argument.
    WANTED.store(unsafe { PyLong_AsLongLong(args[4]) } as u32 & 3, Ordering::Relaxed);
    let none = ptr::addr_of_mut!(_Py_NoneStruct);
    for (slot, obj) in [(&WATCHED_CODE, args[1]), (&WATCHED, args[2]), (&HIDE_UNDER, args[3])] {
        if obj != none && slot.load(Ordering::Relaxed).is_null() {
            // SAFETY: references kept for the process's life (two objects).
            unsafe { Py_IncRef(obj) };
            slot.store(obj, Ordering::Relaxed);
        }
    }
    STOPPED.store(false, Ordering::Relaxed);
    set_profile(true);
    answer(true)
}

/// `profile_stop()`: this thread's function goes now, the others' at
/// their next event.
pub(crate) unsafe extern "C" fn py_profile_stop(_m: *mut PyObject, _args: *const *mut PyObject, _n: isize) -> *mut PyObject {
    STOPPED.store(true, Ordering::Relaxed);
    set_profile(false);
    none()
}

/// `thread(frame, event, arg)`: the first event of a thread started after
/// the agent (`threading.setprofile` makes it this thread's Python
/// profile function): the compiled one replaces it, the frames already
/// running get their entries (outermost first), then this event counts.
pub(crate) unsafe extern "C" fn py_profile_thread(_m: *mut PyObject, args: *const *mut PyObject, n: isize) -> *mut PyObject {
    if STOPPED.load(Ordering::Relaxed) || n != 3 {
        // What `sys.setprofile(None)` does, for this thread.
        set_profile(false);
        return none();
    }
    set_profile(true);
    // SAFETY: CPython passes `n` arguments: a frame, an event name, a value.
    let args = unsafe { std::slice::from_raw_parts(args, n as usize) };
    let frame = args[0] as *mut c_void;
    let mut event = [0u8; 8];
    let mut len: isize = 0;
    // SAFETY: the event's name, a str; its UTF-8 is the string's own.
    let p = unsafe { PyUnicode_AsUTF8AndSize(args[1], &mut len) };
    if p.is_null() {
        swallow_error();
        return none();
    }
    let len = (len as usize).min(8);
    // SAFETY: `p` points to at least `len` bytes.
    unsafe { ptr::copy_nonoverlapping(p as *const u8, event.as_mut_ptr(), len) };
    let what = match &event[..len] {
        b"call" => PYTRACE_CALL,
        b"return" => PYTRACE_RETURN,
        _ => -1,
    };
    // The frames running already: from the caller of a frame being called,
    // from the frame itself otherwise.
    let start = if what == PYTRACE_CALL {
        back_of(frame)
    } else {
        // SAFETY: the borrowed frame, referenced while it is walked.
        unsafe { Py_IncRef(frame as *mut PyObject) };
        frame
    };
    let mut chain = Vec::new();
    let mut f = start;
    while !f.is_null() && chain.len() < 4096 {
        chain.push(f);
        f = back_of(f);
    }
    let entries = WANTED.load(Ordering::Relaxed) & 1 != 0;
    for &f in chain.iter().rev().filter(|_| entries) {
        let code = code_of(f);
        if !code.is_null() {
            let line = first_line(code);
            finish(with_recorder(|r| r.record(KIND_ENTRY, code, None, line)));
            // SAFETY: the reference `code_of` gave.
            unsafe { Py_DecRef(code) };
        }
    }
    for f in chain {
        // SAFETY: the references `back_of` (or the increment above) gave.
        unsafe { Py_DecRef(f as *mut PyObject) };
    }
    if what >= 0 {
        let none_ptr = ptr::addr_of_mut!(_Py_NoneStruct);
        let arg = if args[2] == none_ptr { ptr::null_mut() } else { args[2] };
        // SAFETY: as CPython calls the profile function, with the GIL.
        if unsafe { on_event(ptr::null_mut(), frame, what, arg) } != 0 {
            return ptr::null_mut();
        }
    }
    none()
}
