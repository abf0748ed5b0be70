//! A finished program: resolved instructions, the map relocations still to be
//! patched with file descriptors at load time, disassembler comments, and the
//! name the kernel will show for it.
//!
//! A [`Program`] only comes out of [`ProgramBuilder::build`], so its jumps are
//! resolved and its last instruction cannot fall through.
//!
//! [`ProgramBuilder::build`]: crate::ProgramBuilder::build

use std::collections::{BTreeMap, BTreeSet};

use crate::builder::MapRef;
use crate::insn::Insn;

/// Longest program name the kernel stores, including the NUL (`BPF_OBJ_NAME_LEN`).
pub const KERNEL_NAME_LEN: usize = 16;

/// A `ld_imm64` whose first slot's `imm` must become a map's fd before load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reloc {
    /// Slot index of the first half of the `ld_imm64`.
    pub insn: usize,
    /// Which of the program's maps it refers to.
    pub map: MapRef,
}

/// A map relocation could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelocError {
    /// The fd table given to [`Program::to_bytes`] has no entry for this map.
    #[error("instruction {insn} refers to map #{} but only {given} map fds were given", map.0)]
    MissingFd {
        /// The unresolved map.
        map: MapRef,
        /// Slot index of the `ld_imm64` referring to it.
        insn: usize,
        /// Length of the fd table that was given.
        given: usize,
    },
}

/// A built eBPF program, ready to be relocated and loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The name given to the builder; see [`Program::kernel_name`] for the
    /// form the kernel accepts.
    pub name: String,
    insns: Vec<Insn>,
    relocs: Vec<Reloc>,
    comments: BTreeMap<usize, String>,
    stack_depth: u16,
}

impl Program {
    pub(crate) fn from_parts(
        name: String,
        insns: Vec<Insn>,
        relocs: Vec<Reloc>,
        comments: BTreeMap<usize, String>,
        stack_depth: u16,
    ) -> Program {
        Program {
            name,
            insns,
            relocs,
            comments,
            stack_depth,
        }
    }

    /// The instruction slots; a map reference's `imm` still holds the map
    /// index, not an fd.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Number of instruction slots (`ld_imm64` counts as two), which is the
    /// `insn_cnt` the kernel expects.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Always false: the builder rejects empty programs. Present because a
    /// `len` without it reads as an oversight.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The map relocations, in instruction order.
    pub fn relocs(&self) -> &[Reloc] {
        &self.relocs
    }

    /// The distinct maps the program refers to, in index order.
    pub fn map_refs(&self) -> impl Iterator<Item = MapRef> + use<> {
        self.relocs
            .iter()
            .map(|r| r.map)
            .collect::<BTreeSet<_>>()
            .into_iter()
    }

    /// The comment attached to a slot with [`ProgramBuilder::comment`], if any.
    ///
    /// [`ProgramBuilder::comment`]: crate::ProgramBuilder::comment
    pub fn comment_at(&self, insn: usize) -> Option<&str> {
        self.comments.get(&insn).map(String::as_str)
    }

    /// The deepest stack use reached while building, in bytes below `r10`.
    pub fn stack_depth(&self) -> u16 {
        self.stack_depth
    }

    /// The instructions with every map relocation resolved: `map_fds[i]` is
    /// the fd of [`MapRef`]`(i)`.
    pub fn relocated(&self, map_fds: &[i32]) -> Result<Vec<Insn>, RelocError> {
        let mut out = self.insns.clone();
        for r in &self.relocs {
            let fd = usize::try_from(r.map.0)
                .ok()
                .and_then(|i| map_fds.get(i))
                .ok_or(RelocError::MissingFd {
                    map: r.map,
                    insn: r.insn,
                    given: map_fds.len(),
                })?;
            // The builder only records relocations at slots it emitted.
            if let Some(slot) = out.get_mut(r.insn) {
                slot.imm = *fd;
            }
        }
        Ok(out)
    }

    /// The wire form for `BPF_PROG_LOAD`, with map relocations resolved as in
    /// [`Program::relocated`].
    pub fn to_bytes(&self, map_fds: &[i32]) -> Result<Vec<u8>, RelocError> {
        Ok(self
            .relocated(map_fds)?
            .iter()
            .flat_map(Insn::to_bytes)
            .collect())
    }

    /// The name as the kernel's `prog_name` field wants it: at most 15 bytes
    /// of `[A-Za-z0-9_.]` and a NUL. The kernel rejects the load with
    /// `EINVAL` on any other character, so each one becomes `_` rather than
    /// failing a trace over a cosmetic name.
    pub fn kernel_name(&self) -> [u8; KERNEL_NAME_LEN] {
        kernel_name(&self.name)
    }
}

/// See [`Program::kernel_name`]; also usable for map names, which follow the
/// same rule.
pub fn kernel_name(name: &str) -> [u8; KERNEL_NAME_LEN] {
    let mut out = [0u8; KERNEL_NAME_LEN];
    for (slot, c) in out[..KERNEL_NAME_LEN - 1].iter_mut().zip(name.chars()) {
        *slot = if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            c as u8
        } else {
            b'_'
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_name_truncates_and_sanitises() {
        assert_eq!(&kernel_name("count"), b"count\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(&kernel_name("py:function__entry"), b"py_function__en\0");
        assert_eq!(&kernel_name("a.b-c é"), b"a.b_c__\0\0\0\0\0\0\0\0\0");
        assert_eq!(&kernel_name(""), &[0u8; 16]);
        assert_eq!(&kernel_name("0123456789abcdef"), b"0123456789abcde\0");
    }
}
