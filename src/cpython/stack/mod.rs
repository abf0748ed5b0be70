//! Python stacks read from an interpreter's memory, without running
//! anything in it: the thread states of every interpreter, each thread's
//! frames, and what a frame's code object is called and where it is.
//!
//! Everything here reads through [`Memory`], so the walk is pure: the live
//! reader (`process::python`, over `process_vm_readv`) and tests (a map of
//! bytes) give it memory. The target keeps running while it is read, so
//! every pointer is followed with a bound, every object is checked to be of
//! the type it should be before its fields are believed, and a frame that
//! cannot be read ends its thread's walk with a counted error, never a
//! guess.
//!
//! - [`walk`]: interpreters, thread states, the GIL holder, raw frames
//!   (code pointer and position);
//! - [`code`]: a code object's names, file and line table, and strings;
//! - [`locals`]: a frame's local variables, shown without running anything;
//! - [`sampled`]: naming the frames of a stack the kernel read.

pub mod code;
pub mod locals;
pub mod sampled;
pub mod walk;

/// Memory of the process being read.
pub trait Memory {
    /// Fills `buf` from `address`; an error when any of it is unreadable.
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
}

/// Memory that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unreadable memory at {0:#x}")]
pub struct Unreadable(pub u64);

/// Reads a little-endian `u64`.
pub fn read_u64(mem: &dyn Memory, address: u64) -> Result<u64, Unreadable> {
    let mut b = [0u8; 8];
    mem.read(address, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads a little-endian `u32`.
pub fn read_u32(mem: &dyn Memory, address: u64) -> Result<u32, Unreadable> {
    let mut b = [0u8; 4];
    mem.read(address, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Reads one byte.
pub fn read_u8(mem: &dyn Memory, address: u64) -> Result<u8, Unreadable> {
    let mut b = [0u8; 1];
    mem.read(address, &mut b)?;
    Ok(b[0])
}

/// Where the interpreter is in the process, and the types its objects are
/// checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// `&_PyRuntime`.
    pub address: u64,
    /// The version's layout.
    pub layout: super::layout::StackLayout,
    /// `&PyCode_Type`: a frame's code object must be of this type.
    pub code_type: u64,
    /// `&PyUnicode_Type`: names and file names must be strs.
    pub str_type: u64,
    /// `&PyBytes_Type`: line tables are bytes.
    pub bytes_type: u64,
}

#[cfg(test)]
pub(crate) mod fake;
