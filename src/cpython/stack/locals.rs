//! A frame's local variables, read from memory (`pytap dump --locals`):
//! their names from the code object, their values from the frame's slots.
//!
//! Only plain locals are shown (3.11+: slots whose kind is
//! `CO_FAST_LOCAL`; cells and free variables are other objects); an
//! unbound one (a null slot) is left out. A value is shown as Python's
//! `repr` for None, bool, int, float, str and bytes (cut when long), as its
//! size for a list, tuple, dict or set, and as its type otherwise: nothing
//! is called in the target, so nothing else can be shown.

use super::{Memory, Runtime, Unreadable, read_u64};
use crate::cpython::PyVersion;
use crate::cpython::layout::LocalNames;
use crate::cpython::objects::{self, Captured, ObjectLayout, PyValue};

/// Locals shown per frame at most.
pub const MAX_LOCALS: usize = 256;

/// Bytes of an object read to show it (a str's first 200-odd characters).
const OBJECT_BYTES: usize = 256;

/// `CO_FAST_LOCAL`: a slot that holds a plain local (3.11+).
const CO_FAST_LOCAL: u8 = 0x20;

/// One local variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// Its name.
    pub name: String,
    /// Its value, shown.
    pub value: String,
}

/// The plain locals of the frame at `frame`, running the code at `code`.
pub fn read(
    mem: &dyn Memory,
    rt: &Runtime,
    frame: u64,
    code: u64,
) -> Result<Vec<Local>, super::code::CodeError> {
    let l = &rt.layout;
    let tuple = ObjectLayout::for_version(PyVersion::new(3, l.minor, 0))
        .expect("every stack layout's version has an object layout");
    let (names, count, kinds) = match l.locals {
        LocalNames::Varnames { names, count } => {
            let names = read_u64(mem, code + u64::from(names))?;
            let count = super::read_u32(mem, code + u64::from(count))? as usize;
            (names, count, None)
        }
        LocalNames::LocalsPlus { names, kinds } => {
            let names = read_u64(mem, code + u64::from(names))?;
            let kinds = read_u64(mem, code + u64::from(kinds))?;
            let kinds = super::code::read_bytes(mem, rt, kinds)?;
            (names, kinds.len(), Some(kinds))
        }
    };
    let length = read_u64(mem, names + u64::from(tuple.var_size))? as usize;
    let mut out = Vec::new();
    for i in 0..count.min(length).min(MAX_LOCALS) {
        if kinds.as_ref().is_some_and(|k| k[i] & CO_FAST_LOCAL == 0) {
            continue;
        }
        let slot = frame + u64::from(l.frame_localsplus) + 8 * i as u64;
        let value = read_u64(mem, slot)? & !l.code_tag_bits;
        if value == 0 {
            continue;
        }
        let name_ptr = read_u64(mem, names + u64::from(tuple.tuple_items) + 8 * i as u64)?;
        out.push(Local {
            name: super::code::read_str(mem, rt, name_ptr)?,
            value: show(mem, &tuple, value),
        });
    }
    Ok(out)
}

/// An object shown without running anything in the target.
fn show(mem: &dyn Memory, layout: &ObjectLayout, object: u64) -> String {
    let Ok(type_name) = type_name(mem, layout, object) else {
        return format!("<unreadable at {object:#x}>");
    };
    // An object near the end of its mapping: its first bytes will do.
    let mut data = vec![0u8; OBJECT_BYTES];
    if mem.read(object, &mut data).is_err() {
        data.truncate(64);
        if mem.read(object, &mut data).is_err() {
            return format!("<{type_name} at {object:#x}>");
        }
    }
    let size = |at: u16| {
        let at = usize::from(at);
        u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"))
    };
    let items = |n: u64| format!("<{type_name} of {n} item{}>", if n == 1 { "" } else { "s" });
    match type_name.as_str() {
        "list" | "tuple" => items(size(layout.var_size)),
        // `ma_used` and a set's `used` follow the object header.
        "dict" => items(size(16)),
        "set" | "frozenset" => items(size(24)),
        _ => {
            let value = objects::decode(
                layout,
                Captured {
                    type_name: Some(&type_name),
                    data: &data,
                },
                &[],
            );
            match value {
                PyValue::Other(t) => format!("<{t} at {object:#x}>"),
                PyValue::Unreadable => format!("<{type_name} at {object:#x}>"),
                v => v.to_string(),
            }
        }
    }
}

/// `Py_TYPE(object)->tp_name`.
fn type_name(mem: &dyn Memory, layout: &ObjectLayout, object: u64) -> Result<String, Unreadable> {
    let tp = read_u64(mem, object + 8)?;
    let name = read_u64(mem, tp + u64::from(layout.tp_name))?;
    let mut buf = [0u8; 64];
    mem.read(name, &mut buf)?;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}
