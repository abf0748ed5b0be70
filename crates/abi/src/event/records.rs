//! The records of the markers: function calls and lines, gc collections,
//! imports, and audit events with their bounded snapshot of arguments.

use super::{EventHeader, STR_CAP};

/// Top-level audit arguments captured (the rest are counted, not decoded).
pub const AUDIT_ITEMS: usize = 8;
/// Elements captured of each audit argument that is itself a tuple.
pub const AUDIT_NESTED: usize = 4;
/// Bytes of each top-level audit argument object captured (header + inline data).
pub const OBJ_BYTES: usize = 256;
/// Bytes of each nested audit argument object captured.
pub const NESTED_OBJ_BYTES: usize = 128;
/// Bytes of an object's type name (`tp_name`) captured.
pub const TYPE_NAME: usize = 32;
/// Bytes of the audit argument tuple captured: header plus item pointers.
pub const AUDIT_ROOT_BYTES: usize = 32 + 8 * AUDIT_ITEMS;

/// `function__entry`, `function__return` and `line`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct FunctionEvent {
    /// Header.
    pub header: EventHeader,
    /// Line number (the `def` line on entry, the current line otherwise).
    pub lineno: i32,
    /// `probe_read_user_str` result for `filename`.
    pub filename_ret: i32,
    /// `probe_read_user_str` result for `funcname`.
    pub funcname_ret: i32,
    /// Padding.
    pub _pad: u32,
    /// `filename` pointer in the target.
    pub filename_ptr: u64,
    /// `funcname` pointer in the target.
    pub funcname_ptr: u64,
    /// NUL-terminated file name (packed: `packed_len(filename_ret)` bytes).
    pub filename: [u8; STR_CAP],
    /// NUL-terminated function name (packed: right after the file name).
    pub funcname: [u8; STR_CAP],
}

/// `gc__start`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct GcStartEvent {
    /// Header.
    pub header: EventHeader,
    /// Generation being collected.
    pub generation: i32,
    /// Padding.
    pub _pad: u32,
}

/// `gc__done`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct GcDoneEvent {
    /// Header.
    pub header: EventHeader,
    /// Objects collected.
    pub collected: i64,
}

/// `import__find__load__start` and `import__find__load__done`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct ImportEvent {
    /// Header.
    pub header: EventHeader,
    /// `probe_read_user_str` result for `module`.
    pub module_ret: i32,
    /// `found` (done only; 0 on start).
    pub found: i32,
    /// `module` pointer in the target.
    pub module_ptr: u64,
    /// NUL-terminated module name (packed: `packed_len(module_ret)` bytes).
    pub module: [u8; STR_CAP],
}

/// One captured audit argument object.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct ObjectSnapshot<const N: usize> {
    /// Object pointer (0: no object in this slot).
    pub ptr: u64,
    /// `probe_read_user_str` result for the type name.
    pub type_name_ret: i32,
    /// `probe_read_user` result for `data` (0 on success).
    pub data_ret: i32,
    /// `Py_TYPE(obj)->tp_name`.
    pub type_name: [u8; TYPE_NAME],
    /// The first `N` bytes of the object.
    pub data: [u8; N],
}

/// `audit`: the event name and a bounded snapshot of its argument tuple.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct AuditEvent {
    /// Header.
    pub header: EventHeader,
    /// `probe_read_user_str` result for `event`.
    pub event_ret: i32,
    /// `probe_read_user` result for the tuple header (0 on success).
    pub root_ret: i32,
    /// `event` pointer in the target.
    pub event_ptr: u64,
    /// Argument tuple pointer in the target.
    pub args_ptr: u64,
    /// The tuple's header and first item pointers (layout per CPython version).
    pub root: [u8; AUDIT_ROOT_BYTES],
    /// The first [`AUDIT_ITEMS`] arguments.
    pub items: [ObjectSnapshot<OBJ_BYTES>; AUDIT_ITEMS],
    /// For each argument that is a tuple, its first [`AUDIT_NESTED`] elements.
    pub nested: [[ObjectSnapshot<NESTED_OBJ_BYTES>; AUDIT_NESTED]; AUDIT_ITEMS],
    /// NUL-terminated event name.
    pub event: [u8; STR_CAP],
}
