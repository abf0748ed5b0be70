//! Per-thread call stacks rebuilt from function entries and returns, with
//! the repairs CPython's markers need (pure: no I/O).
//!
//! Entries and returns do not always pair up (see `pytap info`): on 3.15 a
//! generator's creation fires an entry that never returns and the
//! `__init__` shim frame returns without an entry; an interpreter attached
//! mid-run returns from frames entered before the probes were there. So a
//! return is matched against the innermost frame of the same function, not
//! blindly against the top:
//!
//! - the top frame is that function: pop it;
//! - a deeper frame is: the frames above it never returned (orphans, such as
//!   3.15's generator creations); they are dropped with it, and counted;
//! - no frame is: the return has no entry (3.15's shim, or a frame entered
//!   before attaching); it is ignored, and counted.
//!
//! Depths therefore never drift past the next return of an enclosing frame.

use std::collections::HashMap;

use crate::engine::abi::{EventKind, FLAG_GENERATOR_CREATION};
use crate::engine::decode::Header;

/// A function as the markers name it. The names are shared: a frame, a
/// flow line and a table row of the same function hold the same strings
/// (the tools name every event, and `output::event::Strings`
/// hands out one `FuncId` per function it has seen).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncId {
    /// File name.
    pub filename: std::sync::Arc<str>,
    /// Function name.
    pub funcname: std::sync::Arc<str>,
}

/// A frame on a thread's stack: a function call (`F` is how it is named:
/// [`FuncId`] for the tools, ids into a recording's string table for the
/// exporters, which also keep gc collections and imports on the stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<F = FuncId> {
    /// The function.
    pub func: F,
    /// Line of the entry (the `def` line).
    pub line: i32,
    /// When it was entered.
    pub entered_ns: u64,
    /// Time spent in callees that returned (for self time).
    pub child_ns: u64,
}

/// What a return did to the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Returned<F = FuncId> {
    /// It matched `frame`, which was at `depth` (0 = outermost); the
    /// `orphans` above it (innermost last) were dropped.
    Matched {
        /// The frame that returned.
        frame: Frame<F>,
        /// Its depth.
        depth: usize,
        /// Frames above it that never returned, outermost first.
        orphans: Vec<Frame<F>>,
    },
    /// No frame of this function was on the stack.
    Unmatched,
}

/// Call stacks of every thread (keyed by tid).
#[derive(Debug)]
pub struct Stacks<F = FuncId> {
    threads: HashMap<u32, Vec<Frame<F>>>,
    /// Returns that matched no entry.
    pub unmatched_returns: u64,
    /// Entries dropped because an outer frame returned first.
    pub orphan_entries: u64,
    /// Returns of 3.15's `__init__` shim frame (see [`Stacks::ret_call`]),
    /// not counted in `unmatched_returns`.
    pub shim_returns: u64,
}

impl<F> Default for Stacks<F> {
    fn default() -> Self {
        Stacks {
            threads: HashMap::new(),
            unmatched_returns: 0,
            orphan_entries: 0,
            shim_returns: 0,
        }
    }
}

impl<F: PartialEq> Stacks<F> {
    /// Matches a return (see the module docs). The caller's `child_ns`
    /// grows by the returned frame's duration.
    pub fn ret(&mut self, tid: u32, func: &F, ts_ns: u64) -> Returned<F> {
        self.ret_matching(tid, |f| f == func, ts_ns)
    }
}

impl Stacks<FuncId> {
    /// Matches a function's return. 3.15's `__init__` shim frame returns
    /// with no entry (file and function both named `__init__`): such a
    /// return is counted as a shim's, not as unmatched.
    pub fn ret_call(&mut self, tid: u32, func: &FuncId, ts_ns: u64) -> Returned {
        let returned = self.ret(tid, func, ts_ns);
        if returned == Returned::Unmatched
            && &*func.filename == "__init__"
            && &*func.funcname == "__init__"
        {
            self.unmatched_returns -= 1;
            self.shim_returns += 1;
        }
        returned
    }
}

/// Whether an event is 3.15's generator creation: a `function__entry` the
/// probe flagged because no frame runs (3.9 and 3.11 fire nothing there).
/// Every view leaves it out of the stacks.
pub fn is_creation(header: &Header) -> bool {
    header.kind == EventKind::FunctionEntry && header.flags & FLAG_GENERATOR_CREATION != 0
}

impl<F> Stacks<F> {
    /// Pushes an entry; returns its depth (0 = outermost).
    pub fn enter(&mut self, tid: u32, func: F, line: i32, ts_ns: u64) -> usize {
        let stack = self.threads.entry(tid).or_default();
        stack.push(Frame {
            func,
            line,
            entered_ns: ts_ns,
            child_ns: 0,
        });
        stack.len() - 1
    }

    /// Matches a return against the innermost frame `matches` accepts
    /// (see the module docs). The caller's `child_ns` grows by the
    /// returned frame's duration.
    pub fn ret_matching(
        &mut self,
        tid: u32,
        matches: impl Fn(&F) -> bool,
        ts_ns: u64,
    ) -> Returned<F> {
        let Some(depth) = self.innermost(tid, matches) else {
            self.unmatched_returns += 1;
            return Returned::Unmatched;
        };
        let stack = self.threads.get_mut(&tid).expect("innermost found it");
        let orphans = stack.split_off(depth + 1);
        let frame = stack.pop().expect("depth is within the stack");
        self.orphan_entries += orphans.len() as u64;
        match stack.last_mut() {
            Some(parent) => parent.child_ns += ts_ns.saturating_sub(frame.entered_ns),
            // A thread back at its outermost level keeps nothing (a
            // program that starts a thread per request must not grow the
            // table without bound).
            None => {
                self.threads.remove(&tid);
            }
        }
        Returned::Matched {
            frame,
            depth,
            orphans,
        }
    }

    /// Where the frame an end would match is on `tid`'s stack: the
    /// innermost one `matches` accepts (the rule of the module docs).
    pub fn innermost(&self, tid: u32, matches: impl Fn(&F) -> bool) -> Option<usize> {
        self.frames(tid).iter().rposition(|f| matches(&f.func))
    }

    /// The current depth of a thread (frames on its stack).
    pub fn depth(&self, tid: u32) -> usize {
        self.threads.get(&tid).map_or(0, Vec::len)
    }

    /// The frames of a thread, outermost first.
    pub fn frames(&self, tid: u32) -> &[Frame<F>] {
        self.threads.get(&tid).map_or(&[], Vec::as_slice)
    }

    /// Forgets a thread: it ended, or its process executed another
    /// program (its frames will never return).
    pub fn forget(&mut self, tid: u32) {
        self.threads.remove(&tid);
    }

    /// Threads with frames on their stacks.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> FuncId {
        FuncId {
            filename: "t.py".into(),
            funcname: name.into(),
        }
    }

    fn depth_of(r: &Returned) -> Option<(usize, usize)> {
        match r {
            Returned::Matched { depth, orphans, .. } => Some((*depth, orphans.len())),
            Returned::Unmatched => None,
        }
    }

    #[test]
    fn balanced_calls_and_threads() {
        let mut s = Stacks::default();
        assert_eq!(s.enter(1, f("main"), 1, 0), 0);
        assert_eq!(s.enter(2, f("worker"), 5, 1), 0);
        assert_eq!(s.enter(1, f("leaf"), 3, 10), 1);
        assert_eq!(depth_of(&s.ret(1, &f("leaf"), 15)), Some((1, 0)));
        assert_eq!(s.frames(1)[0].child_ns, 5);
        assert_eq!(depth_of(&s.ret(2, &f("worker"), 20)), Some((0, 0)));
        assert_eq!(depth_of(&s.ret(1, &f("main"), 30)), Some((0, 0)));
        assert_eq!((s.unmatched_returns, s.orphan_entries), (0, 0));
    }

    #[test]
    fn recursion_pops_the_innermost_frame() {
        let mut s = Stacks::default();
        for d in 0..3 {
            assert_eq!(s.enter(1, f("fib"), 1, d), d as usize);
        }
        for d in (0..3).rev() {
            assert_eq!(depth_of(&s.ret(1, &f("fib"), 10)), Some((d, 0)));
        }
    }

    #[test]
    fn a_generator_creation_entry_is_dropped_at_the_callers_return() {
        // 3.15: `g = gen()` fires an entry that never returns.
        let mut s = Stacks::default();
        s.enter(1, f("main"), 1, 0);
        s.enter(1, f("gen"), 5, 1); // creation
        s.enter(1, f("gen"), 5, 2); // first resume
        assert_eq!(depth_of(&s.ret(1, &f("gen"), 3)), Some((2, 0)));
        assert_eq!(depth_of(&s.ret(1, &f("main"), 9)), Some((0, 1)));
        assert_eq!(s.orphan_entries, 1);
        assert_eq!(s.depth(1), 0);
    }

    #[test]
    fn a_return_without_entry_is_ignored() {
        // 3.15's `__init__` shim frame.
        let mut s = Stacks::default();
        s.enter(1, f("main"), 1, 0);
        assert_eq!(s.ret(1, &f("__init__"), 1), Returned::Unmatched);
        assert_eq!(s.ret(7, &f("x"), 1), Returned::Unmatched);
        assert_eq!(s.unmatched_returns, 2);
        assert_eq!(s.depth(1), 1);
    }
}
