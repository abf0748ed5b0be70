//! `_pytap_agent`: the compiled callbacks of pytap's in-process agent.
//!
//! A CPython extension module on the stable ABI (3.8+), loaded by the
//! agent (`src/capture/agent.py` in pytap) from the capture directory. Its
//! `entry`, `ret` and `line` functions are registered as the
//! `sys.monitoring` callbacks; `mark` writes the agent's gc, import and
//! audit records. Each callback writes one 32-byte record to the ring
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
//!
//! - [`callbacks`]: the module's functions as CPython calls them;
//! - [`recorder`]: the writer of the ring, and what it learns once per
//!   code object and offset;
//! - [`profile`]: 3.8–3.11's compiled profile function, in place of
//!   `sys.monitoring`;
//! - [`slot`]: where the recorder lives between calls;
//! - [`python`]: small steps over the C API (None, errors, arguments);
//! - [`hash`]: the recorder's cheap hasher;
//! - [`ffi`]: the CPython and C library declarations.

#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

use std::ffi::c_void;
use std::ptr;

pub mod ffi;
mod callbacks;
mod hash;
mod profile;
mod python;
mod recorder;
mod slot;

use callbacks::{py_close, py_entry, py_entry_line, py_line, py_mark, py_open, py_return};
use profile::{py_profile_start, py_profile_stop, py_profile_thread};
use ffi::*;
use pytap_abi::capture as ring;

// The ring's layout is pytap's (crates/abi, read by src/capture/ring.rs):
// header words by index, record kinds as the words they are packed into.
// Here at the root, where pytap's test of the layout reads them, for every
// module of the extension.
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

static mut METHODS: [PyMethodDef; 11] = [
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
        ml_name: c"mark".as_ptr(),
        ml_meth: py_mark as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"entry_line".as_ptr(),
        ml_meth: py_entry_line as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"profile_start".as_ptr(),
        ml_meth: py_profile_start as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"profile_stop".as_ptr(),
        ml_meth: py_profile_stop as *mut c_void,
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    },
    PyMethodDef {
        ml_name: c"thread".as_ptr(),
        ml_meth: py_profile_thread as *mut c_void,
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
