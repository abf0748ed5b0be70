//! What a code object is called, where it is, and its lines, read from
//! memory; and the strs and bytes objects that hold them.
//!
//! A code object's address alone does not say which function it is for
//! long: code is freed and its memory reused. [`CodeInfo`] keeps the
//! pointers it was read from ([`CodeInfo::identity`]) so a cache can tell
//! whether an address still holds the same code before reusing a name.

use std::sync::Arc;

use super::{Memory, Runtime, Unreadable, read_u8, read_u32, read_u64};
use crate::cpython::layout::StackLayout;
use crate::cpython::linetable::LineTable;

/// A refcount at or above this is no refcount: a freed object's first word,
/// where the allocator keeps its free-list pointer (user addresses start
/// at 4 MiB and are usually near 2^47). Immortal objects of 3.12+ count
/// 2^32 − 1 or 3 × 2^30 and stay below it.
const MAX_REFCNT: u64 = 1 << 40;

/// The longest name or file name read (longer ones are cut and marked).
pub const MAX_STR_CHARS: usize = 4096;
/// The largest line table read (CPython's own readers bound theirs to 64 KiB).
pub const MAX_LINE_TABLE: usize = 64 * 1024;

/// Why a code object could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Its memory could not be read.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    /// Not a code object, or a field not of the type it should be.
    #[error("{what} at {address:#x} is not what a code object holds")]
    WrongType {
        /// What was expected.
        what: &'static str,
        /// Where.
        address: u64,
    },
}

/// A code object, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInfo {
    /// `co_name`.
    pub name: Arc<str>,
    /// `co_qualname` (3.11+).
    pub qualname: Option<Arc<str>>,
    /// `co_filename`.
    pub filename: Arc<str>,
    /// `co_firstlineno`.
    pub first_line: u32,
    /// The decoded line table.
    pub lines: LineTable,
    /// What it was read from: the name and file name pointers, the first
    /// line, the name's hash.
    pub identity: Identity,
}

impl CodeInfo {
    /// The name to show: the qualified name where the version has one.
    pub fn function(&self) -> &Arc<str> {
        self.qualname.as_ref().unwrap_or(&self.name)
    }
}

/// A code object's identity: its name and file name pointers, its first
/// line and its name's hash.
pub type Identity = (u64, u64, u32, u64);

/// The identity of the code object at `code`, read without decoding
/// anything. Two reads that agree are the same code: a freed code's
/// replacement may have its strings at the same addresses (allocations
/// repeat), but not the same name, which the hash stands for.
pub fn identity(mem: &dyn Memory, l: &StackLayout, code: u64) -> Result<Identity, Unreadable> {
    let name = read_u64(mem, code + u64::from(l.code_name))?;
    Ok((
        name,
        read_u64(mem, code + u64::from(l.code_filename))?,
        read_u32(mem, code + u64::from(l.code_first_line))?,
        read_u64(mem, name.wrapping_add(pytap_abi::sample::STR_HASH))?,
    ))
}

/// The fingerprint of an identity (what the sampler's program computes).
pub fn fingerprint(identity: Identity) -> u32 {
    let (name, file, line, hash) = identity;
    pytap_abi::sample::fingerprint(name, file, line, hash)
}

/// Reads the code object at `code`.
///
/// The target runs on while it is read: a code object freed meanwhile
/// keeps its old bytes until its memory is reused, while its strings'
/// memory may already hold new ones (a name of one function beside the
/// file of the next was seen). So the object must be alive (a live
/// object's refcount is a count; a freed block's first word is the
/// allocator's free-list pointer) before and after its strings are read,
/// with the same identity both times.
pub fn read(mem: &dyn Memory, rt: &Runtime, code: u64) -> Result<CodeInfo, CodeError> {
    let l = &rt.layout;
    let alive = |at: u64, type_: u64, what: &'static str| -> Result<(), CodeError> {
        let refcnt = read_u64(mem, at)?;
        if read_u64(mem, at + u64::from(l.object_type))? != type_ || refcnt >= MAX_REFCNT {
            return Err(CodeError::WrongType { what, address: at });
        }
        Ok(())
    };
    alive(code, rt.code_type, "the object")?;
    let identity = identity(mem, l, code)?;
    let (name_ptr, file_ptr, first_line, _) = identity;
    let name: Arc<str> = read_str(mem, rt, name_ptr)?.into();
    let filename: Arc<str> = read_str(mem, rt, file_ptr)?.into();
    let qualname = match l.code_qualname {
        Some(off) => {
            let q = read_str(mem, rt, read_u64(mem, code + u64::from(off))?)?;
            Some(if *q == *name { name.clone() } else { q.into() })
        }
        None => None,
    };
    let table = read_bytes(mem, rt, read_u64(mem, code + u64::from(l.code_linetable))?)?;
    alive(code, rt.code_type, "the object")?;
    if self::identity(mem, l, code)? != identity {
        return Err(CodeError::WrongType {
            what: "a code object changed while read",
            address: code,
        });
    }
    Ok(CodeInfo {
        lines: LineTable::decode(l.line_table, &table, first_line),
        name,
        qualname,
        filename,
        first_line,
        identity,
    })
}

/// Reads a compact `str` (every name and file name CPython makes is one).
pub fn read_str(mem: &dyn Memory, rt: &Runtime, at: u64) -> Result<String, CodeError> {
    let l = &rt.layout;
    let wrong = CodeError::WrongType {
        what: "a str",
        address: at,
    };
    if at == 0 || read_u64(mem, at + u64::from(l.object_type))? != rt.str_type {
        return Err(wrong);
    }
    let length = read_u64(mem, at + u64::from(l.str_length))? as usize;
    let state = read_u8(mem, at + u64::from(l.str_state))?;
    // `state`: interned (2 bits), kind (3), compact (1), ascii (1).
    let kind = usize::from((state >> 2) & 7);
    let compact = state & (1 << 5) != 0;
    let ascii = state & (1 << 6) != 0;
    if !compact || !matches!(kind, 1 | 2 | 4) {
        return Err(wrong);
    }
    let start = if ascii {
        l.str_ascii_size
    } else {
        l.str_compact_size
    };
    let take = length.min(MAX_STR_CHARS);
    let mut data = vec![0u8; take * kind];
    mem.read(at + u64::from(start), &mut data)?;
    let mut text = crate::cpython::objects::compact_chars(kind, &data);
    if take < length {
        text.push('…');
    }
    Ok(text)
}

/// Reads a `bytes` object's contents (at most [`MAX_LINE_TABLE`]).
pub fn read_bytes(mem: &dyn Memory, rt: &Runtime, at: u64) -> Result<Vec<u8>, CodeError> {
    let l = &rt.layout;
    if at == 0 || read_u64(mem, at + u64::from(l.object_type))? != rt.bytes_type {
        return Err(CodeError::WrongType {
            what: "a bytes object",
            address: at,
        });
    }
    let size = (read_u64(mem, at + u64::from(l.bytes_size))? as usize).min(MAX_LINE_TABLE);
    let mut data = vec![0u8; size];
    mem.read(at + u64::from(l.bytes_data), &mut data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpython::stack::fake::{FakeProcess, runtime};

    #[test]
    fn names_files_and_lines_of_every_layout() {
        for minor in [8, 9, 10, 11, 12, 13, 14, 15] {
            let mut p = FakeProcess::new(minor);
            let code = p.code("Klass.wörk", "/srv/app/ナ.py", 40);
            let rt = runtime(&p);
            let info = read(&p, &rt, code).unwrap();
            assert_eq!(&*info.filename, "/srv/app/ナ.py", "3.{minor}");
            assert_eq!(info.first_line, 40);
            if minor >= 11 {
                assert_eq!(info.function().as_ref(), "Klass.wörk");
                assert_eq!(&*info.name, "wörk");
            } else {
                assert_eq!(info.function().as_ref(), "wörk");
            }
            // The fake's table puts every instruction on the first line + 1.
            assert_eq!(info.lines.line_at(0), Some(41), "3.{minor}");
        }
    }

    #[test]
    fn objects_of_the_wrong_type_are_refused() {
        let mut p = FakeProcess::new(12);
        let not_code = p.object(0x1234);
        let rt = runtime(&p);
        assert!(matches!(
            read(&p, &rt, not_code),
            Err(CodeError::WrongType { .. })
        ));
        assert!(matches!(read(&p, &rt, 0x10), Err(CodeError::Unreadable(_))));
        assert!(read_str(&p, &rt, not_code).is_err());
    }
}

/// Code objects named once per process and reused while their identity
/// holds: a sampled frame gives a code address and the
/// [`fingerprint`](pytap_abi::sample::fingerprint) of the identity the
/// kernel read; a cached entry with another fingerprint (the code was
/// freed and its memory reused) is read again, and a code whose identity
/// no longer matches the sample's is not named at all.
#[derive(Debug, Default)]
pub struct Symbols {
    by_code: std::collections::HashMap<u64, (u32, Arc<CodeInfo>)>,
}

/// Entries a [`Symbols`] keeps before starting over (a program that makes
/// code without end must not make pytap grow without end).
pub const MAX_SYMBOLS: usize = 1 << 16;

impl Symbols {
    /// The code at `code` if its identity still has `fingerprint`.
    pub fn name(
        &mut self,
        mem: &dyn Memory,
        rt: &Runtime,
        code: u64,
        fingerprint: u32,
    ) -> Option<Arc<CodeInfo>> {
        if let Some((fp, info)) = self.by_code.get(&code)
            && *fp == fingerprint
        {
            return Some(info.clone());
        }
        let info = read(mem, rt, code).ok()?;
        let fp = self::fingerprint(info.identity);
        if fp != fingerprint {
            return None;
        }
        if self.by_code.len() >= MAX_SYMBOLS {
            self.by_code.clear();
        }
        let info = Arc::new(info);
        self.by_code.insert(code, (fp, info.clone()));
        Some(info)
    }
}
