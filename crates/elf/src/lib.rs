//! What an ELF file says to a USDT tracer.
//!
//! This crate owns everything pytap learns from the bytes of an executable or
//! shared library, and nothing else: no file is opened and no syscall is made
//! here. Callers hand in bytes (`&[u8]`) or any [`object::ReadRef`], such as
//! an [`object::ReadCache`] over an open file, which reads lazily and never
//! past the end of the file.
//!
//! - [`note`]: the `.note.stapsdt` descriptors SystemTap's `<sys/sdt.h>` emits
//!   (`pc`, `base`, `semaphore`, provider, name, argument string).
//! - [`argspec`]: x86-64 argument specs such as `8@%rbp`, `-4@112(%rsp)`,
//!   `-1@-96(%rbp,%rax,8)` and `4@$5`, parsed into a typed [`ArgSpec`].
//! - [`image`]: the file as a whole: its program headers (to turn a virtual
//!   address into the file offset a uprobe needs), the prelink adjustment
//!   from `.stapsdt.base`, the dynamic section, dynamic symbols and strings.
//!
//! Every parser here sees target-controlled input. None of them may panic;
//! malformed input is an error value. The parsers are fuzzed (see the
//! project README, "Development").

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod argspec;
pub mod image;
pub mod note;

pub use argspec::{ArgLocation, ArgSpec, ArgSpecError, X86Reg, parse_arg_specs};
pub use image::{
    DynamicInfo, ElfError, ElfImage, ElfKind, FunctionSymbol, LoadSegment, ProbeSite, Semaphore,
    Symbol,
};
pub use note::{NoteError, StapsdtNote, parse_stapsdt_notes};
