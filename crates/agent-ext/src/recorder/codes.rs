//! What the recorder learns once per code object and offset: the code's
//! id and its def record (names and first line, from the agent's
//! `describe`), and the line an instruction offset is on (`line_of`),
//! remembered as the second word of its records.

use std::ffi::c_char;
use std::ptr;

use crate::ffi::*;
use crate::python::{none, swallow_error};
use super::{Code, Recorder};
use crate::KIND_DEF;

impl Recorder {
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

    /// The second word when the code or the offset is new: `None` when
    /// the event is not recorded (the agent's own code, or lost).
    pub(super) fn slow_word(&mut self, code: *mut PyObject, offset: Option<i64>, line: i64) -> Result<Option<u64>, ()> {
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
}
