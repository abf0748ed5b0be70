//! The eBPF instruction model behind pytap: programs are written as typed
//! Rust calls and encoded straight to kernel bytecode, with no C toolchain.
//!
//! This crate is pure data and arithmetic: no syscalls, and no files but
//! one (below). It owns
//!
//! - [`insn`]: the 8-byte instruction word, registers and opcode fields;
//! - [`helper`]: kernel helper ids and their flag values;
//! - [`builder`]: [`ProgramBuilder`], with labels resolved at build time,
//!   map references recorded as relocations and a stack-slot allocator;
//! - [`program`]: the built [`Program`], relocated to bytes at load time;
//! - [`disasm`]: a `bpftool`-style disassembler and a byte decoder;
//! - [`btf`]: a reader of the kernel's BTF type information, for the
//!   offsets of kernel struct fields (`task_struct.thread.fsbase`) that
//!   programs read with `bpf_probe_read_kernel`.
//!
//! Loading, map creation and attaching belong to the crates that do I/O.
//! The one exception is [`btf::Btf::from_file`], a plain read of a BTF file
//! (`/sys/kernel/btf/vmlinux`) before parsing it.
//!
//! # Example
//!
//! Count events in slot 0 of an array map:
//!
//! ```
//! use pytap_ebpf::{Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size, disassemble_with};
//!
//! let counts = MapRef(0);
//! let mut b = ProgramBuilder::new("count_events");
//! let key = b.alloc_stack(4, 4)?;
//! let done = b.new_label();
//!
//! b.comment("key = 0");
//! b.st_imm(Size::W, Reg::FP, key.off, 0);
//! b.ld_map_fd(Reg::R1, counts);
//! b.mov64_reg(Reg::R2, Reg::FP).add64_imm(Reg::R2, key.off.into());
//! b.call(Helper::MapLookupElem);
//! b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
//! b.mov64_imm(Reg::R1, 1);
//! b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
//! b.bind(done);
//! b.mov64_imm(Reg::R0, 0).exit();
//! let prog = b.build()?;
//!
//! assert_eq!(
//!     disassemble_with(&prog, &|_| "counts".to_string()),
//!     "\
//! ; key = 0
//!    0: *(u32 *)(r10 -4) = 0
//!    1: r1 = map[counts] ll
//!    3: r2 = r10
//!    4: r2 += -4
//!    5: call map_lookup_elem#1
//!    6: if r0 == 0x0 goto +2 <9>
//!    7: r1 = 1
//!    8: lock *(u64 *)(r0 +0) += r1
//!    9: r0 = 0
//!   10: exit
//! "
//! );
//!
//! // At load time the map index becomes the map's fd.
//! let bytes = prog.to_bytes(&[42])?;
//! assert_eq!(bytes.len(), 11 * 8);
//! assert_eq!(bytes[8..16], [0x18, 0x11, 0, 0, 42, 0, 0, 0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod btf;
pub mod builder;
pub mod disasm;
pub mod helper;
pub mod insn;
pub mod program;

pub use builder::{
    BuildError, Label, MAX_INSNS, MAX_STACK, MapRef, ProgramBuilder, StackMark, StackSlot,
};
pub use disasm::{DecodeError, decode, disassemble, disassemble_with};
pub use helper::{
    Helper, RB_AVAIL_DATA, RB_FORCE_WAKEUP, RB_NO_WAKEUP, ringbuf_query, update_flags,
};
pub use insn::{AluOp, Insn, JmpOp, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, Reg, Size, op};
pub use program::{KERNEL_NAME_LEN, Program, Reloc, RelocError, kernel_name};
