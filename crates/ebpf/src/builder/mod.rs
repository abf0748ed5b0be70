//! [`ProgramBuilder`]: typed emission of eBPF instructions with symbolic jump
//! targets, map references and a stack-slot allocator, turned into a
//! [`Program`] by [`ProgramBuilder::build`].
//!
//! Emitting never fails on the spot: mistakes that can only be judged once the
//! whole program is known (unbound labels, jump distances) and misuse that
//! would otherwise need a `Result` on every call (a label bound twice, an
//! atomic of the wrong width) are reported by `build`. Only the stack
//! allocator answers immediately, because its caller has to know the slot.

use std::collections::BTreeMap;
use std::fmt;

use crate::insn::Insn;
use crate::program::{Program, Reloc};

mod emit;
mod error;
mod stack;

pub use self::error::BuildError;
pub use self::stack::{StackMark, StackSlot};

/// Stack bytes available to one program frame (`MAX_BPF_STACK`).
pub const MAX_STACK: u16 = 512;

/// Most instructions a privileged program may have (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_INSNS: usize = 1_000_000;

/// A jump target, created by [`ProgramBuilder::new_label`] and placed with
/// [`ProgramBuilder::bind`]. Only meaningful to the builder that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// A map used by a program: an index into the loader's table of maps, which
/// becomes that map's fd when [`Program::to_bytes`] applies relocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapRef(pub u32);

#[derive(Debug, Clone, Copy)]
struct Fixup {
    at: usize,
    label: Label,
}

/// Builds one eBPF program instruction by instruction.
///
/// Register arguments follow the kernel's order: destination first. Memory
/// operands are `(base register, offset)`, matching `*(size *)(base + off)`.
/// Emitting methods return `&mut Self` so short sequences can be chained.
#[derive(Debug, Clone)]
pub struct ProgramBuilder {
    name: String,
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
    relocs: Vec<Reloc>,
    comments: BTreeMap<usize, String>,
    pending_comment: Option<String>,
    stack_used: u16,
    stack_peak: u16,
    /// Live marks, outermost first, so a release can tell a stale mark from a live one.
    marks: Vec<StackMark>,
    next_mark: u32,
    error: Option<BuildError>,
}

impl ProgramBuilder {
    /// An empty program called `name` (see [`Program::kernel_name`]).
    pub fn new(name: &str) -> ProgramBuilder {
        ProgramBuilder {
            name: name.to_owned(),
            insns: Vec::new(),
            labels: Vec::new(),
            fixups: Vec::new(),
            relocs: Vec::new(),
            comments: BTreeMap::new(),
            pending_comment: None,
            stack_used: 0,
            stack_peak: 0,
            marks: Vec::new(),
            next_mark: 0,
            error: None,
        }
    }

    /// Instruction slots emitted so far (`ld_imm64` counts as two); also the
    /// index the next instruction will get.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether nothing has been emitted yet.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Attach a comment to the next emitted instruction, for `--dump-bpf`.
    /// Several comments before one instruction are kept as separate lines; a
    /// comment with no instruction after it is dropped.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        match &mut self.pending_comment {
            Some(c) => {
                c.push('\n');
                c.push_str(text);
            }
            None => self.pending_comment = Some(text.to_owned()),
        }
        self
    }

    /// Append a raw instruction slot. The typed methods are preferred; this
    /// is the escape hatch for forms they do not cover.
    pub fn emit(&mut self, insn: Insn) -> &mut Self {
        if let Some(c) = self.pending_comment.take() {
            self.comments.insert(self.insns.len(), c);
        }
        self.insns.push(insn);
        self
    }

    fn defer(&mut self, e: BuildError) {
        // The first mistake is the one worth reporting; later ones often follow from it.
        self.error.get_or_insert(e);
    }

    // ---- finishing --------------------------------------------------------

    /// Resolve every jump and check the program can be loaded as far as its
    /// shape goes (the verifier judges the rest).
    pub fn build(mut self) -> Result<Program, BuildError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.insns.is_empty() {
            return Err(BuildError::Empty);
        }
        if self.insns.len() > MAX_INSNS {
            return Err(BuildError::TooManyInsns {
                count: self.insns.len(),
            });
        }
        for f in &self.fixups {
            let target = self
                .labels
                .get(f.label.0 as usize)
                .copied()
                .flatten()
                .ok_or(BuildError::UnboundLabel {
                    label: f.label,
                    at: f.at,
                })?;
            if target >= self.insns.len() {
                return Err(BuildError::JumpPastEnd {
                    at: f.at,
                    label: f.label,
                });
            }
            // Both indices are below MAX_INSNS, far inside i64.
            let offset = target as i64 - f.at as i64 - 1;
            let off = i16::try_from(offset)
                .map_err(|_| BuildError::JumpOutOfRange { at: f.at, offset })?;
            if let Some(insn) = self.insns.get_mut(f.at) {
                insn.off = off;
            }
        }
        if !self.insns.last().is_some_and(Insn::is_terminator) || self.ends_in_ld_imm64() {
            return Err(BuildError::FallsOffEnd);
        }
        Ok(Program::from_parts(
            self.name,
            self.insns,
            self.relocs,
            self.comments,
            self.stack_peak,
        ))
    }

    /// Whether the last slot is the second half of an `ld_imm64`, whose raw
    /// bytes could otherwise be mistaken for an instruction.
    fn ends_in_ld_imm64(&self) -> bool {
        let mut i = 0;
        while i < self.insns.len() {
            if i + 1 == self.insns.len() {
                return false;
            }
            i += if self.insns[i].is_ld_imm64() { 2 } else { 1 };
        }
        true
    }
}
