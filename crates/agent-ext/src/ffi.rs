//! The CPython stable ABI and the C library functions the recorder uses,
//! declared by hand (no bindings generator, no headers): only what is
//! used, with the layouts of CPython 3.12+'s limited API on x86-64 Linux.

use std::ffi::{c_char, c_int, c_long, c_void};

// ---- The CPython stable ABI (only what is used) ----

#[repr(C)]
pub struct PyObject {
    pub(crate) ob_refcnt: isize,
    pub(crate) ob_type: *mut c_void,
}

#[repr(C)]
pub(crate) struct PyModuleDef_Base {
    pub(crate) ob_base: PyObject,
    pub(crate) m_init: Option<unsafe extern "C" fn() -> *mut PyObject>,
    pub(crate) m_index: isize,
    pub(crate) m_copy: *mut PyObject,
}

#[repr(C)]
pub(crate) struct PyMethodDef {
    pub(crate) ml_name: *const c_char,
    pub(crate) ml_meth: *mut c_void,
    pub(crate) ml_flags: c_int,
    pub(crate) ml_doc: *const c_char,
}

#[repr(C)]
pub(crate) struct PyModuleDef {
    pub(crate) m_base: PyModuleDef_Base,
    pub(crate) m_name: *const c_char,
    pub(crate) m_doc: *const c_char,
    pub(crate) m_size: isize,
    pub(crate) m_methods: *mut PyMethodDef,
    pub(crate) m_slots: *mut c_void,
    pub(crate) m_traverse: *mut c_void,
    pub(crate) m_clear: *mut c_void,
    pub(crate) m_free: *mut c_void,
}

pub(crate) const METH_FASTCALL: c_int = 0x0080;
/// `PYTHON_ABI_VERSION`.
pub(crate) const PYTHON_ABI_VERSION: c_int = 3;

unsafe extern "C" {
    pub(crate) fn PyModule_Create2(def: *mut PyModuleDef, apiver: c_int) -> *mut PyObject;
    pub(crate) fn PyLong_AsLongLong(o: *mut PyObject) -> i64;
    pub(crate) fn PyLong_FromLongLong(v: i64) -> *mut PyObject;
    pub(crate) fn PyBytes_AsStringAndSize(o: *mut PyObject, s: *mut *mut c_char, len: *mut isize) -> c_int;
    pub(crate) fn PyUnicode_AsUTF8AndSize(o: *mut PyObject, size: *mut isize) -> *const c_char;
    pub(crate) fn PyTuple_GetItem(t: *mut PyObject, i: isize) -> *mut PyObject;
    pub(crate) fn PyObject_CallFunctionObjArgs(callable: *mut PyObject, ...) -> *mut PyObject;
    pub(crate) fn Py_IncRef(o: *mut PyObject);
    pub(crate) fn PyObject_GetAttrString(o: *mut PyObject, name: *const c_char) -> *mut PyObject;
    pub(crate) fn PyBool_FromLong(v: c_long) -> *mut PyObject;
    pub(crate) fn Py_DecRef(o: *mut PyObject);
    pub(crate) fn PyErr_Occurred() -> *mut PyObject;
    pub(crate) fn PyErr_Clear();
    pub(crate) fn PyErr_ExceptionMatches(exc: *mut PyObject) -> c_int;
    pub(crate) fn PyErr_SetString(exc: *mut PyObject, msg: *const c_char);
    pub(crate) static mut _Py_NoneStruct: PyObject;
    pub(crate) static mut PyExc_Exception: *mut PyObject;
    pub(crate) static mut PyExc_ValueError: *mut PyObject;
}

// ---- The C library (loaded in every CPython process) ----

#[repr(C)]
pub(crate) struct timespec {
    pub(crate) tv_sec: c_long,
    pub(crate) tv_nsec: c_long,
}

unsafe extern "C" {
    pub(crate) fn clock_gettime(clock: c_int, tp: *mut timespec) -> c_int;
    pub(crate) fn syscall(number: c_long, ...) -> c_long;
    pub(crate) fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    pub(crate) fn close(fd: c_int) -> c_int;
    pub(crate) fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64)
        -> *mut c_void;
    pub(crate) fn munmap(addr: *mut c_void, len: usize) -> c_int;
    pub(crate) fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int;
    pub(crate) fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `dlsym`'s handle for the process's global symbols.
pub(crate) const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

pub(crate) const CLOCK_MONOTONIC: c_int = 1;
pub(crate) const SYS_GETTID: c_long = 186;
pub(crate) const O_RDWR: c_int = 2;
pub(crate) const O_CLOEXEC: c_int = 0o2000000;
pub(crate) const PROT_READ: c_int = 1;
pub(crate) const PROT_WRITE: c_int = 2;
pub(crate) const MAP_SHARED: c_int = 1;
pub(crate) const MAP_FAILED: *mut c_void = !0usize as *mut c_void;
