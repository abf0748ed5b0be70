//! The stack sampler's records and maps: what its BPF program writes into
//! the samples ring and what pytap tells it about each process. The code
//! generator (`pytap::engine::codegen::pystack`) stores at `offset_of!`
//! these structs and the decoder reads at the same offsets.
//!
//! A record is a [`SampleHeader`], `depth` [`SampleFrame`]s, innermost
//! first, then `native` [`NativeEntry`]s of the native stack, innermost
//! first (only from a sampler asked for native frames). A frame is the code object's address, the byte offset
//! of the instruction in its bytecode, and a [`fingerprint`] of the code's
//! identity (its name and file name pointers, first line and name's hash) so that
//! pytap never names a frame after code that was freed and replaced at
//! the same address.

use std::mem::{offset_of, size_of};

/// Frames a sample holds at most (a power of two: the program masks its
/// index with `MAX_FRAMES - 1`).
pub const MAX_FRAMES: usize = 128;

/// Thread states the program looks through for the sampled thread when
/// pytap has not told it yet.
pub const MAX_THREAD_SCAN: usize = 64;

/// The start of a sample.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleHeader {
    /// `bpf_ktime_get_ns()`.
    pub ts_ns: u64,
    /// The thread state sampled (0: none found).
    pub tstate: u64,
    /// Process (init namespace).
    pub pid: u32,
    /// Thread (init namespace).
    pub tid: u32,
    /// The CPU the sample was taken on.
    pub cpu: u32,
    /// Frames that follow.
    pub depth: u16,
    /// `FLAG_*`.
    pub flags: u16,
    /// Native entries after the frames.
    pub native: u16,
    /// Zero.
    pub pad: [u16; 3],
}

/// One frame of a sample.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleFrame {
    /// The code object's address.
    pub code: u64,
    /// The instruction's byte offset in the code's bytecode (negative: the
    /// frame has not started).
    pub offset: i32,
    /// [`fingerprint`] of the code's identity.
    pub fingerprint: u32,
}

/// Native entries a sample holds at most.
pub const MAX_NATIVE: usize = 64;

/// One native frame, from the kernel's walk of the frame pointers.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NativeEntry {
    /// Where the thread was (the first entry) or a return address.
    pub address: u64,
    /// The lowest address of the frame's stack area: its locals lie from
    /// here up to the next entry's `stack`.
    pub stack: u64,
}

/// A frame whose `code` is this is no Python frame: it marks where one
/// call of the interpreter's eval loop ends and the next (outer) begins.
/// Only samples with native frames carry them, so that pytap can put each
/// run of Python frames in the place of its eval loop's native frame. Its
/// other 8 bytes (`offset`, then `fingerprint`) hold the address of the
/// entry frame the eval loop keeps on its C stack (3.12+; 0 before),
/// which says which native frame runs the call.
pub const EVAL_BOUNDARY: u64 = 0;

/// The header and the largest run of frames.
pub const PYTHON_BYTES: usize = size_of::<SampleHeader>() + MAX_FRAMES * size_of::<SampleFrame>();

/// The largest record.
pub const SAMPLE_BYTES: usize = PYTHON_BYTES + MAX_NATIVE * size_of::<NativeEntry>();

/// `flags`: the stack had more frames than [`MAX_FRAMES`].
pub const FLAG_TRUNCATED: u16 = 1;
/// `flags`: the sampled thread holds the GIL.
pub const FLAG_GIL: u16 = 2;
/// `flags`: no thread state of the process belongs to the sampled thread
/// (a thread that never ran Python).
pub const FLAG_NO_THREAD: u16 = 4;
/// `flags`: a frame or code object could not be read; the frames before
/// it are kept.
pub const FLAG_FAULT: u16 = 8;
/// `flags`: a frame's code is not a code object (read while it changed);
/// the frames before it are kept.
pub const FLAG_NOT_CODE: u16 = 16;
/// `flags`: a native stack only (a script's `ustack()`): no Python frames
/// were walked, and `native` entries follow the header.
pub const FLAG_NATIVE_ONLY: u16 = 32;

/// What pytap tells the program about a process (the `procs` map's value,
/// keyed by tgid).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcConfig {
    /// `&_PyRuntime`.
    pub runtime: u64,
    /// `&PyCode_Type`.
    pub code_type: u64,
    /// The slot of its layout's program in the program array.
    pub slot: u32,
    /// `MODE_*`.
    pub mode: u32,
}

/// `ProcConfig.mode`: every sample of a thread of the process.
pub const MODE_ALL: u32 = 0;
/// `ProcConfig.mode`: only samples of the thread holding the GIL.
pub const MODE_GIL: u32 = 1;

/// The key of the `threads` map (thread pointer → thread state).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadKey {
    /// Process (init namespace).
    pub pid: u32,
    /// Zero.
    pub pad: u32,
    /// The thread pointer (`fsbase`), which equals `PyThreadState.thread_id`.
    pub fsbase: u64,
}

/// Where a `str` keeps its hash (`PyASCIIObject.hash`, after the refcount,
/// the type and the length, on every GIL build of 3.8 to 3.15). A code
/// object's name is an interned identifier, whose hash is always computed.
pub const STR_HASH: u64 = 24;

/// The fingerprint of a code object's identity, as the program computes
/// it: the name pointer, the file name pointer rotated left by 17, the
/// first line and the name's hash, xored, folded to 32 bits.
///
/// The pointers alone are not enough: a loop that compiles and frees code
/// makes the same allocations in the same order, so a new code object, its
/// name and its file name can land exactly where the freed ones were. Only
/// the characters differ, and the name's hash stands for them.
pub fn fingerprint(name: u64, filename: u64, first_line: u32, name_hash: u64) -> u32 {
    let x = name ^ filename.rotate_left(17) ^ u64::from(first_line) ^ name_hash;
    (x ^ (x >> 32)) as u32
}

/// Offsets the code generator and the decoder share.
#[expect(
    missing_docs,
    reason = "each offset is named after the field it locates"
)]
pub mod off {
    use super::*;

    pub const TS: usize = offset_of!(SampleHeader, ts_ns);
    pub const TSTATE: usize = offset_of!(SampleHeader, tstate);
    pub const PID: usize = offset_of!(SampleHeader, pid);
    pub const TID: usize = offset_of!(SampleHeader, tid);
    pub const CPU: usize = offset_of!(SampleHeader, cpu);
    pub const DEPTH: usize = offset_of!(SampleHeader, depth);
    pub const FLAGS: usize = offset_of!(SampleHeader, flags);
    pub const NATIVE: usize = offset_of!(SampleHeader, native);
    pub const NATIVE_ENTRY: usize = size_of::<NativeEntry>();
    pub const NATIVE_STACK: usize = offset_of!(NativeEntry, stack);
    pub const HEADER: usize = size_of::<SampleHeader>();
    pub const FRAME: usize = size_of::<SampleFrame>();
    pub const FRAME_CODE: usize = offset_of!(SampleFrame, code);
    pub const FRAME_OFFSET: usize = offset_of!(SampleFrame, offset);
    pub const FRAME_FINGERPRINT: usize = offset_of!(SampleFrame, fingerprint);
    pub const CONFIG_RUNTIME: usize = offset_of!(ProcConfig, runtime);
    pub const CONFIG_CODE_TYPE: usize = offset_of!(ProcConfig, code_type);
    pub const CONFIG_SLOT: usize = offset_of!(ProcConfig, slot);
    pub const CONFIG_MODE: usize = offset_of!(ProcConfig, mode);
    pub const CONFIG_SIZE: usize = size_of::<ProcConfig>();
    pub const KEY_PID: usize = offset_of!(ThreadKey, pid);
    pub const KEY_FSBASE: usize = offset_of!(ThreadKey, fsbase);
    pub const KEY_SIZE: usize = size_of::<ThreadKey>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_pinned() {
        assert_eq!(off::HEADER, 40);
        assert_eq!(off::NATIVE, 32);
        assert_eq!(off::FRAME, 16);
        assert_eq!(
            (off::PID, off::TID, off::CPU, off::DEPTH, off::FLAGS),
            (16, 20, 24, 28, 30)
        );
        assert_eq!(off::CONFIG_SIZE, 24);
        assert_eq!((off::KEY_SIZE, off::KEY_FSBASE), (16, 8));
        assert_eq!(SAMPLE_BYTES, 40 + 128 * 16 + 64 * 16);
        assert_eq!(off::NATIVE_ENTRY, 16);
        assert!(MAX_FRAMES.is_power_of_two());
    }

    #[test]
    fn fingerprints_fold_every_part() {
        let a = fingerprint(0x7f00_0000_1000, 0x7f00_0000_2000, 10, 0x1234_5678_9abc);
        assert_ne!(
            a,
            fingerprint(0x7f00_0000_1010, 0x7f00_0000_2000, 10, 0x1234_5678_9abc)
        );
        assert_ne!(
            a,
            fingerprint(0x7f00_0000_1000, 0x7f00_0000_2010, 10, 0x1234_5678_9abc)
        );
        assert_ne!(
            a,
            fingerprint(0x7f00_0000_1000, 0x7f00_0000_2000, 11, 0x1234_5678_9abc)
        );
        assert_ne!(
            a,
            fingerprint(0x7f00_0000_1000, 0x7f00_0000_2000, 10, 0x1234_5678_9abd)
        );
        assert_eq!(
            a,
            fingerprint(0x7f00_0000_1000, 0x7f00_0000_2000, 10, 0x1234_5678_9abc)
        );
    }
}
