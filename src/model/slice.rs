//! What a timeline is made of: threads, the slices open on their stacks
//! (calls, gc collections, imports), how a slice ends, and the [`Sink`]
//! that receives them (pure). [`super::timeline::Timeline`] makes them from
//! events; every export format is a `Sink`.

use anyhow::Result;

use crate::engine::decode::AuditArgs;
use crate::model::stack::Frame;
use crate::recording::StringTable;

/// A thread of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thread {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
}

/// A function call: ids into the recording's [`StringTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Call {
    /// Function name.
    pub funcname: u32,
    /// File name.
    pub filename: u32,
    /// The `def` line.
    pub lineno: i32,
}

/// What is open on a thread's stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item {
    /// A Python function call.
    Call(Call),
    /// A gc collection of `generation`.
    Gc {
        /// The generation collected.
        generation: i32,
    },
    /// An import of `module` (a string id).
    Import {
        /// The module's name.
        module: u32,
    },
}

/// How a slice ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// A function returned (or unwound).
    Returned,
    /// A collection finished, having collected this many objects.
    Collected(i64),
    /// An import finished: whether the module was found.
    Imported(bool),
    /// It never ended in the recording: closed at the recording's last
    /// timestamp, or when a frame below it returned first.
    Unfinished,
}

/// An audit event on a timeline: an instant on its thread, with its name
/// and its arguments when they were captured.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    /// Where it happened.
    pub thread: Thread,
    /// When.
    pub ts_ns: u64,
    /// The event's name (`open`, `socket.connect`, …).
    pub event: &'a str,
    /// Its arguments, when they were captured.
    pub args: Option<&'a AuditArgs>,
}

/// Receives a recording as a timeline. Calls on one thread come in time
/// order and nest: every [`Sink::begin`] has its [`Sink::end`] (at the
/// latest at [`Sink::finish`]'s time), innermost first.
pub trait Sink {
    /// A process's name, when first known and whenever it changes.
    fn process(&mut self, _pid: u32, _name: &str) -> Result<()> {
        Ok(())
    }

    /// A thread's name, when first known and whenever it changes; comes
    /// before the thread's first slice.
    fn thread(&mut self, _thread: Thread, _name: &str) -> Result<()> {
        Ok(())
    }

    /// A slice begins at `ts_ns`: `stack` is the thread's stack with it
    /// on top (outermost first).
    fn begin(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        strings: &StringTable,
    ) -> Result<()>;

    /// The top slice of `stack` (the thread's stack before it is popped,
    /// outermost first) ends at `ts_ns`.
    fn end(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        how: &End,
        strings: &StringTable,
    ) -> Result<()>;

    /// An audit event (an instant), and the thread's stack at that
    /// moment. Formats without instants (flame graphs) leave it out.
    fn audit(
        &mut self,
        _audit: &Audit<'_>,
        _stack: &[Frame<Item>],
        _strings: &StringTable,
    ) -> Result<()> {
        Ok(())
    }

    /// The recording ended; everything has been ended. Writes the rest.
    fn finish(&mut self, strings: &StringTable) -> Result<()>;
}
