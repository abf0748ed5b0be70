//! The kernel's own records of a traced process's threads: renames,
//! execs and exits.

use super::EventHeader;

/// `EventHeader.kind` of a [`TaskEvent`] from the `task_rename` tracepoint:
/// a thread's name changed (`prctl(PR_SET_NAME)`, a write to
/// `/proc/…/comm`, or an exec).
pub const TASK_RENAME: u16 = 64;
/// `EventHeader.kind` of a [`TaskEvent`] from `sched_process_exec`: the
/// process executed a new program.
pub const TASK_EXEC: u16 = 65;
/// `EventHeader.kind` of a [`TaskEvent`] from `sched_process_exit`: a
/// thread of the process ended (after its last event); what is kept for it
/// can go.
pub const TASK_EXIT: u16 = 66;

/// What the kernel tells of a traced process's threads, through the same
/// ring buffer as the markers' events (in order with them by timestamp):
/// names as they change, execs and thread exits. These records never reach
/// the tools as events; the run loop keeps the names (see
/// `pytap::engine::tasks`), follows execs, and tells the tools when a
/// thread ended or a process executed (their per-thread state goes).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct TaskEvent {
    /// Header: `kind` is [`TASK_RENAME`], [`TASK_EXEC`] or [`TASK_EXIT`],
    /// `site` 0.
    pub header: EventHeader,
    /// For an exec, the thread id that called execve (another thread than
    /// the leader takes over the process id); 0 for a rename.
    pub old_tid: u32,
    /// `probe_read_kernel_str` result for `comm` (rename).
    pub comm_ret: i32,
    /// The new name, NUL-terminated (at most 15 bytes, the kernel's limit).
    pub comm: [u8; 16],
}
