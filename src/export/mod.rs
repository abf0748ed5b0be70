//! Exports of a recording: Perfetto, Chrome JSON, speedscope, folded
//! stacks and SVG flame graphs (pure: they write to what they are given).
//!
//! A recording's events go through one [`timeline::Timeline`], which turns
//! them into what every format needs: per thread, calls, gc collections
//! and imports as properly nested slices (the stack repairs of
//! [`crate::model::stack`]: a return without its entry is dropped and
//! counted, frames that never returned are closed and flagged), audit
//! events as instants, and the names of processes and threads. Each format
//! is a [`Sink`] fed in the recording's order.
//!
//! A sampled profile has outputs of its own ([`profile`]), which share
//! these formats' frame names, escaping, flame graph rendering and
//! protobuf encoder.

pub mod chrome;
pub mod flame;
pub mod folded;
pub mod perfetto;
pub mod profile;
pub mod protobuf;
pub mod speedscope;

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// pprof's gzipped protobuf: a sampled profile's only (a recording of
    /// samples); no timeline has one.
    Pprof,
}

/// What a folded stack's number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weight {
    /// Nanoseconds spent in the stack and not in a callee.
    #[default]
    Time,
    /// Calls that returned with this stack.
    Calls,
}

/// What the sinks' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use std::cell::RefCell;
    use std::io::Write;
    use std::rc::Rc;

    use crate::model::slice::Item;
    use crate::model::stack::Frame;

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
