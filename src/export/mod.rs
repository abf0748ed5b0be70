//! Exports of a recording: Perfetto, Chrome JSON, speedscope, folded
//! stacks and SVG flame graphs (pure: they write to what they are given).
//!
//! A recording's events go through one [`timeline::Timeline`], which turns
//! them into what every format needs: per thread, calls, gc collections
//! and imports as properly nested slices (the stack repairs of
//! [`crate::tool::stack`]: a return without its entry is dropped and
//! counted, frames that never returned are closed and flagged), audit
//! events as instants, and the names of processes and threads. Each format
//! is a [`Sink`] fed in the recording's order.

pub mod chrome;
pub mod flame;
pub mod folded;
pub mod perfetto;
pub mod protobuf;
pub mod speedscope;
pub mod timeline;

use anyhow::Result;

use crate::engine::decode::AuditArgs;
use crate::recording::StringTable;
use crate::tool::stack::Frame;

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Perfetto's native protobuf trace (ui.perfetto.dev).
    Perfetto,
    /// Chrome Trace Event JSON (chrome://tracing, older tools).
    Chrome,
    /// speedscope's evented profile format (speedscope.app).
    Speedscope,
    /// Folded stacks, `a;b;c N` (flamegraph.pl, inferno, and others).
    Folded,
    /// An SVG flame graph.
    Svg,
}

/// What a folded stack's number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Weight {
    /// Nanoseconds spent in the stack and not in a callee.
    #[default]
    Time,
    /// Calls that returned with this stack.
    Calls,
}

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

/// How flame charts and speedscope name a thread: `NAME (pid P, tid T)`,
/// NAME being the thread's name, else its process's, else `python`.
pub fn thread_label(
    thread: Thread,
    name: Option<&str>,
    processes: &std::collections::HashMap<u32, String>,
) -> String {
    let name = name
        .or_else(|| processes.get(&thread.pid).map(String::as_str))
        .unwrap_or("python");
    format!("{name} (pid {}, tid {})", thread.pid, thread.tid)
}

/// What is open on a thread's stack.
#[derive(Debug, Clone, PartialEq)]
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

    /// An audit event (an instant): its name, its arguments when they were
    /// captured, and the thread's stack at that moment. Formats without
    /// instants (flame graphs) leave it out.
    fn audit(
        &mut self,
        _thread: Thread,
        _ts_ns: u64,
        _event: &str,
        _args: Option<&AuditArgs>,
        _stack: &[Frame<Item>],
        _strings: &StringTable,
    ) -> Result<()> {
        Ok(())
    }

    /// The recording ended; everything has been ended. Writes the rest.
    fn finish(&mut self, strings: &StringTable) -> Result<()>;
}

/// What the sinks' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use std::cell::RefCell;
    use std::io::Write;
    use std::rc::Rc;

    use super::Item;
    use crate::tool::stack::Frame;

    /// A stack frame of `func` (times and line do not matter to sinks).
    pub fn frame(func: Item) -> Frame<Item> {
        Frame {
            func,
            line: 0,
            entered_ns: 0,
            child_ns: 0,
        }
    }

    /// A writer the test keeps a handle on.
    #[derive(Clone, Default)]
    pub struct Shared(pub Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
