//! Small steps over CPython's C API the callbacks share: returning None,
//! telling an error that loses an event from one that goes on to the
//! program, and reading arguments.

use std::ffi::c_char;
use std::ptr;

use crate::ffi::*;

pub(crate) fn none() -> *mut PyObject {
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
pub(crate) fn swallow_error() -> bool {
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

/// Reads a `str` argument as a NUL-terminated path.
pub(crate) fn path_arg(o: *mut PyObject) -> Option<Vec<u8>> {
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

pub(crate) fn value_error(msg: &'static [u8]) -> *mut PyObject {
    // SAFETY: a NUL-terminated message; the GIL is held.
    unsafe { PyErr_SetString(PyExc_ValueError, msg.as_ptr() as *const c_char) };
    ptr::null_mut()
}

pub(crate) fn offset_arg(o: *mut PyObject) -> Option<i64> {
    // SAFETY: an int argument (an instruction offset or a line).
    let v = unsafe { PyLong_AsLongLong(o) };
    if v == -1 && !swallow_error() {
        return None;
    }
    Some(v)
}
