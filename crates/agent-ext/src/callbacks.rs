//! The module's functions, as CPython calls them (METH_FASTCALL):
//! `open` and `close` of the ring, and the `sys.monitoring` callbacks
//! `entry`, `ret` and `line`; `mark`, the writer of the agent's gc, import
//! and audit records.

use std::ffi::c_char;
use std::ptr;
use std::sync::atomic::Ordering;

use crate::ffi::*;
use crate::python::{none, offset_arg, path_arg, value_error};
use crate::recorder::{Helpers, Recorder, defer_mark};
use crate::{HEADER_WORDS, KIND_ENTRY, KIND_LINE, KIND_RETURN};
use crate::slot::{CLOSE_PENDING, GENERATION, OUT, slot, with_recorder};

/// `open(path, size, describe, line_of, stale)`: maps the ring file the
/// agent made (header written, `size` bytes of records) and takes the
/// helpers. A recorder already open (the parent's, after a fork) is
/// replaced.
pub(crate) unsafe extern "C" fn py_open(_m: *mut PyObject, args: *const *mut PyObject, n: isize) -> *mut PyObject {
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
    let helpers = Helpers {
        describe: args[2],
        line_of: args[3],
        stale: args[4],
    };
    *slot() = Some(Recorder::new(map as *mut u64, len_bytes, size as u64, helpers, generation));
    none()
}

/// `close()`: unmaps the ring and lets go of everything.
pub(crate) unsafe extern "C" fn py_close(_m: *mut PyObject, _args: *const *mut PyObject, _n: isize) -> *mut PyObject {
    let taken = slot().take();
    match taken {
        Some(mut r) => r.close(),
        None => CLOSE_PENDING.store(true, Ordering::Relaxed),
    }
    none()
}

macro_rules! callback {
    ($name:ident, $kind:expr, $min:expr, $by_line:expr) => {
        pub(crate) unsafe extern "C" fn $name(
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
// `entry_line(code, line)`: an entry at a line (the profile function's
// frames already running as it starts).
callback!(py_entry_line, KIND_ENTRY, 2, true);

/// `mark(kind, value, payload)`: one gc, import or audit record (the
/// layout's `MARK_BYTES`, then `payload`, a bytes object the agent packed).
pub(crate) unsafe extern "C" fn py_mark(_m: *mut PyObject, args: *const *mut PyObject, n: isize) -> *mut PyObject {
    if n != 3 {
        return value_error(b"mark(kind, value, payload)\0");
    }
    // SAFETY: CPython passes `n` arguments.
    let args = unsafe { std::slice::from_raw_parts(args, n as usize) };
    let (Some(kind), Some(value)) = (offset_arg(args[0]), offset_arg(args[1])) else {
        return ptr::null_mut();
    };
    let mut data: *mut c_char = ptr::null_mut();
    let mut len: isize = 0;
    // SAFETY: the third argument; a bytes object's buffer is its own and
    // stays valid while the argument is (this call).
    if unsafe { PyBytes_AsStringAndSize(args[2], &mut data, &mut len) } != 0 {
        return ptr::null_mut();
    }
    // SAFETY: `data` points to `len` bytes, read before anything else runs.
    let payload = unsafe { std::slice::from_raw_parts(data as *const u8, len as usize) };
    if slot().is_none() && OUT.load(Ordering::Relaxed) {
        // A recorder out of its slot: written when it is back (a lost
        // mark has nowhere to be counted but its ring).
        defer_mark(kind as u64, value, payload, GENERATION.load(Ordering::Relaxed).wrapping_sub(1));
        return none();
    }
    with_recorder(|r| {
        r.mark(kind as u64, value, payload);
        Ok(())
    })
}
