//! What identifies a function without its names: the slots of names a
//! CPU has already sent, and the key the aggregating tools count by.

/// One slot of a CPU's names already sent
/// (`pytap::engine::codegen::named`): the process, the epoch of the
/// session's execs and exits when the record was sent, and the two string
/// pointers of a full function record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SentSlot {
    /// Process id.
    pub pid: u32,
    /// Padding.
    pub _pad: u32,
    /// The names epoch at the time.
    pub epoch: u64,
    /// `filename` pointer.
    pub filename_ptr: u64,
    /// `funcname` pointer.
    pub funcname_ptr: u64,
}

/// Slots of names already sent per CPU, in the CPU's ring region (a
/// power of two: a slot is chosen by the pointers' bits).
pub const SENT_SLOTS: usize = 256;

/// What identifies a function in the kernel-side maps of the aggregating
/// tools (`pytap top`, `pytap calls`): the process, the marker's line
/// number and the two string pointers the marker passed. The pointers point
/// into the code object's `str` objects, so they are stable while the
/// function exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct CallKey {
    /// Process id.
    pub pid: u32,
    /// Line number from the marker.
    pub lineno: i32,
    /// `filename` pointer.
    pub filename_ptr: u64,
    /// `funcname` pointer.
    pub funcname_ptr: u64,
}

impl CallKey {
    /// Size in bytes (the map's key size).
    pub const SIZE: usize = size_of::<CallKey>();

    /// Reads a key from map bytes.
    pub fn from_bytes(b: &[u8]) -> Option<CallKey> {
        let b: &[u8; 24] = b.get(..24)?.try_into().ok()?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(CallKey {
            pid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            lineno: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            filename_ptr: u64_at(8),
            funcname_ptr: u64_at(16),
        })
    }
}
