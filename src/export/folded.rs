//! The folded-stacks export (`frame;frame;frame N`, outermost first), as
//! flamegraph.pl, inferno and most flame graph tools read it; also the
//! aggregation behind the SVG export ([`super::flame`]).
//!
//! A frame is `funcname (filename:lineno)` for a call, `[gc generation N]`
//! for a collection and `[import NAME]` for an import (`;` in names becomes
//! `:`, line breaks become spaces, other control characters are escaped as
//! `\xNN`). Stacks of every thread are merged.
//! With [`Weight::Time`], on each thread the time between two consecutive
//! events (begins and ends) goes to the stack open in between, so a stack's
//! number is the nanoseconds spent in it and not in a callee, and the
//! numbers add up to the summed durations of the threads' outermost slices.
//! With [`Weight::Calls`], each slice ended (unfinished ones too) counts 1
//! for the stack it ended with.
//!
//! Stacks are interned as a tree (a stack is its parent stack and its top
//! frame), so an event costs the same at any depth, and memory grows with
//! the number of distinct stacks, not with the events; lines are sorted at
//! the end. The flame-chart mode is the exception: it
//! keeps every line in time order (merging only consecutive identical
//! stacks), so its memory grows with the recording. Its lines are grouped
//! by thread (threads in the order they first appear), each starting with
//! a frame naming the thread: `NAME (pid P, tid T)` (the thread's name,
//! else its process's, else `python`).

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use super::Weight;
use crate::model::label::thread as thread_label;
use crate::model::slice::{End, Item, Sink, Thread};
use crate::model::stack::Frame;
use crate::recording::StringTable;

/// What a frame is, for interning it (by the flame graph exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Call(u32, u32, i32),
    Gc(i32),
    Import(u32),
    /// A slice begun with an empty stack (not a well-formed timeline).
    Unknown,
}

impl Key {
    /// The key of a stack item (`None`: a slice begun without one).
    pub(crate) fn of(item: Option<&Item>) -> Key {
        match item {
            Some(&Item::Call(c)) => Key::Call(c.funcname, c.filename, c.lineno),
            Some(&Item::Gc { generation }) => Key::Gc(generation),
            Some(&Item::Import { module }) => Key::Import(module),
            None => Key::Unknown,
        }
    }
}

/// A frame's text in folded stacks.
pub fn frame_text(item: &Item, strings: &StringTable) -> String {
    let text = crate::model::label::frame(item, strings);
    folded_safe(&text)
}

/// `text` as a frame of a folded line: `;` (the separator) becomes `:`,
/// line breaks spaces, and other control characters are escaped (the SVG
/// drawn from the lines must be well-formed XML, and a terminal showing
/// them must not obey them).
pub(crate) fn folded_safe(text: &str) -> String {
    let text = text.replace(';', ":").replace(['\n', '\r'], " ");
    crate::output::escape::text(&text).into_owned()
}

/// The stack with no frame, the parent of outermost frames' stacks.
const ROOT: u32 = 0;

/// A stack's frames, outermost first, from the stack tree.
fn frames_of(nodes: &[(u32, u32)], mut stack: u32) -> Vec<u32> {
    let mut frames = Vec::new();
    while stack != ROOT {
        let Some(&(parent, frame)) = nodes.get(stack as usize) else {
            break;
        };
        frames.push(frame);
        stack = parent;
    }
    frames.reverse();
    frames
}

/// One thread's state: when its last event was, and its open stacks
/// (innermost last: the stack each open slice began).
#[derive(Debug, Default)]
struct ThreadState {
    last_ns: u64,
    open: Vec<u32>,
    name: Option<String>,
    /// Flame-chart mode: its lines so far, in time order.
    chart: Vec<(u32, u64)>,
}

/// The folded-stacks sink: writes its lines at [`Sink::finish`] (or hands
/// them over, [`FoldedSink::take_lines`]).
pub struct FoldedSink {
    out: Option<Box<dyn Write>>,
    weight: Weight,
    flame_chart: bool,
    frames: HashMap<Key, u32>,
    texts: Vec<String>,
    threads: HashMap<Thread, ThreadState>,
    /// Threads in the order they first appeared.
    order: Vec<Thread>,
    processes: HashMap<u32, String>,
    /// Stacks by (parent stack, top frame).
    stack_ids: HashMap<(u32, u32), u32>,
    /// Each stack's parent and top frame ([`ROOT`] first).
    stack_nodes: Vec<(u32, u32)>,
    /// Weights by stack.
    stacks: HashMap<u32, u64>,
}

impl std::fmt::Debug for FoldedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoldedSink")
            .field("weight", &self.weight)
            .field("flame_chart", &self.flame_chart)
            .field("stacks", &self.stacks.len())
            .finish_non_exhaustive()
    }
}

impl FoldedSink {
    /// A sink writing folded stacks to `out`, weighted by `weight`; with
    /// `flame_chart`, in time order instead of merged and sorted.
    pub fn new(out: Box<dyn Write>, weight: Weight, flame_chart: bool) -> Self {
        let mut sink = FoldedSink::collecting(weight, flame_chart);
        sink.out = Some(out);
        sink
    }

    /// A sink that keeps its lines for [`FoldedSink::take_lines`] (its
    /// [`Sink::finish`] writes nothing).
    pub fn collecting(weight: Weight, flame_chart: bool) -> Self {
        FoldedSink {
            out: None,
            weight,
            flame_chart,
            frames: HashMap::new(),
            texts: Vec::new(),
            threads: HashMap::new(),
            order: Vec::new(),
            processes: HashMap::new(),
            stack_ids: HashMap::new(),
            stack_nodes: vec![(ROOT, u32::MAX)],
            stacks: HashMap::new(),
        }
    }

    /// The stack `parent` with `frame` on top.
    fn push_stack(&mut self, parent: u32, frame: u32) -> u32 {
        let nodes = &mut self.stack_nodes;
        *self.stack_ids.entry((parent, frame)).or_insert_with(|| {
            nodes.push((parent, frame));
            (nodes.len() - 1) as u32
        })
    }

    /// The lines so far (`stack N`, no line breaks): sorted, or in time
    /// order in flame-chart mode. Empties the sink.
    pub fn take_lines(&mut self) -> Vec<String> {
        let texts = &self.texts;
        let nodes = &self.stack_nodes;
        let join = |first: Option<&str>, stack: u32| {
            let ids = frames_of(nodes, stack);
            let frames = ids
                .iter()
                .map(|&i| texts.get(i as usize).map_or("", String::as_str));
            first
                .into_iter()
                .chain(frames)
                .collect::<Vec<_>>()
                .join(";")
        };
        // Stacks as text; two ids may have the same text: merged below.
        let mut stacks: Vec<(String, u64)> = Vec::new();
        if self.flame_chart {
            for thread in std::mem::take(&mut self.order) {
                let Some(state) = self.threads.remove(&thread) else {
                    continue;
                };
                let root = folded_safe(&thread_label(
                    thread,
                    state.name.as_deref(),
                    &self.processes,
                ));
                for (stack, n) in &state.chart {
                    stacks.push((join(Some(&root), *stack), *n));
                }
            }
        } else {
            for (stack, n) in &self.stacks {
                stacks.push((join(None, *stack), *n));
            }
            stacks.sort_unstable();
        }
        self.stacks.clear();
        let mut lines: Vec<String> = Vec::with_capacity(stacks.len());
        let mut last: Option<(String, u64)> = None;
        for (stack, n) in stacks.into_iter().chain([(String::new(), 0)]) {
            match &mut last {
                Some((text, total)) if *text == stack => *total = total.saturating_add(n),
                _ => {
                    if let Some((text, total)) = last.replace((stack, n)) {
                        lines.push(format!("{text} {total}"));
                    }
                }
            }
        }
        lines
    }

    fn frame_id(&mut self, item: Option<&Item>, strings: &StringTable) -> u32 {
        let key = Key::of(item);
        if let Some(&id) = self.frames.get(&key) {
            return id;
        }
        let id = self.texts.len() as u32;
        let text = item.map_or_else(|| "[unknown]".to_owned(), |i| frame_text(i, strings));
        self.texts.push(text);
        self.frames.insert(key, id);
        id
    }

    fn state(&mut self, thread: Thread) -> &mut ThreadState {
        let order = &mut self.order;
        self.threads.entry(thread).or_insert_with(|| {
            order.push(thread);
            ThreadState::default()
        })
    }

    /// Gives `n` to the stack open on the thread.
    fn add(&mut self, thread: Thread, n: u64) {
        if n == 0 {
            return;
        }
        let flame_chart = self.flame_chart;
        let Some(state) = self.threads.get_mut(&thread) else {
            return;
        };
        let Some(&open) = state.open.last() else {
            return;
        };
        if flame_chart {
            match state.chart.last_mut() {
                Some((stack, total)) if *stack == open => *total = total.saturating_add(n),
                _ => state.chart.push((open, n)),
            }
        } else {
            let total = self.stacks.entry(open).or_insert(0);
            *total = total.saturating_add(n);
        }
    }

    /// Time weight: the time since the thread's last event goes to its
    /// open stack.
    fn elapse(&mut self, thread: Thread, ts_ns: u64) {
        let state = self.state(thread);
        let dt = ts_ns.saturating_sub(state.last_ns);
        state.last_ns = state.last_ns.max(ts_ns);
        if self.weight == Weight::Time {
            self.add(thread, dt);
        }
    }
}

impl Sink for FoldedSink {
    fn process(&mut self, pid: u32, name: &str) -> Result<()> {
        self.processes.insert(pid, name.to_owned());
        Ok(())
    }

    fn thread(&mut self, thread: Thread, name: &str) -> Result<()> {
        self.state(thread).name = Some(name.to_owned());
        Ok(())
    }

    fn begin(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        strings: &StringTable,
    ) -> Result<()> {
        self.elapse(thread, ts_ns);
        let id = self.frame_id(stack.last().map(|f| &f.func), strings);
        let parent = self.state(thread).open.last().copied().unwrap_or(ROOT);
        let stack = self.push_stack(parent, id);
        self.state(thread).open.push(stack);
        Ok(())
    }

    fn end(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        _stack: &[Frame<Item>],
        _how: &End,
        _strings: &StringTable,
    ) -> Result<()> {
        self.elapse(thread, ts_ns);
        if self.weight == Weight::Calls {
            self.add(thread, 1);
        }
        self.state(thread).open.pop();
        Ok(())
    }

    fn finish(&mut self, _strings: &StringTable) -> Result<()> {
        if self.out.is_none() {
            return Ok(());
        }
        let lines = self.take_lines();
        if let Some(out) = &mut self.out {
            for line in lines {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::testing::{Shared, frame};
    use crate::model::slice::Call;

    /// On one thread: f calls g, a gc runs inside g; then h never ends.
    /// On another: f alone.
    fn feed(sink: &mut FoldedSink) -> Result<()> {
        let mut s = StringTable::default();
        let (f, g, h, file) = (s.push(b"f"), s.push(b"g;x"), s.push(b"h"), s.push(b"/a.py"));
        let call = |funcname, lineno| {
            frame(Item::Call(Call {
                funcname,
                filename: file,
                lineno,
            }))
        };
        let (f, g, h) = (call(f, 1), call(g, 5), call(h, 9));
        let gc = frame(Item::Gc { generation: 2 });
        let (t, u) = (Thread { pid: 1, tid: 1 }, Thread { pid: 1, tid: 2 });
        sink.process(1, "python3")?;
        sink.thread(t, "MainThread")?;
        sink.begin(t, 100, std::slice::from_ref(&f), &s)?;
        sink.begin(t, 110, &[f.clone(), g.clone()], &s)?;
        sink.begin(u, 112, std::slice::from_ref(&f), &s)?;
        sink.begin(t, 115, &[f.clone(), g.clone(), gc.clone()], &s)?;
        sink.end(t, 117, &[f.clone(), g.clone(), gc], &End::Collected(3), &s)?;
        sink.end(t, 130, &[f.clone(), g.clone()], &End::Returned, &s)?;
        sink.end(u, 132, std::slice::from_ref(&f), &End::Returned, &s)?;
        sink.end(t, 140, &[f], &End::Returned, &s)?;
        sink.begin(t, 150, std::slice::from_ref(&h), &s)?;
        sink.end(t, 155, &[h], &End::Unfinished, &s)?;
        sink.finish(&s)
    }

    const F: &str = "f (/a.py:1)";
    const G: &str = "g:x (/a.py:5)";

    #[test]
    fn time_is_exact_self_time() -> Result<()> {
        let out = Shared::default();
        let mut sink = FoldedSink::new(Box::new(out.clone()), Weight::Time, false);
        feed(&mut sink)?;
        let text = String::from_utf8(out.0.borrow().clone())?;
        let expected = [
            format!("{F} {}", 10 + 10 + 20),
            format!("{F};{G} {}", 5 + 13),
            format!("{F};{G};[gc generation 2] 2"),
            "h (/a.py:9) 5".to_string(),
        ];
        assert_eq!(text, expected.join("\n") + "\n");
        // The weights add up to the outermost slices' durations.
        let total: u64 = text
            .lines()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(total, (140 - 100) + (155 - 150) + (132 - 112));
        Ok(())
    }

    #[test]
    fn calls_count_ended_slices() -> Result<()> {
        let mut sink = FoldedSink::collecting(Weight::Calls, false);
        feed(&mut sink)?;
        let lines = sink.take_lines();
        assert_eq!(
            lines,
            [
                format!("{F} 2"),
                format!("{F};{G} 1"),
                format!("{F};{G};[gc generation 2] 1"),
                "h (/a.py:9) 1".to_string(),
            ]
        );
        Ok(())
    }

    #[test]
    fn flame_chart_keeps_time_order_per_thread() -> Result<()> {
        let mut sink = FoldedSink::collecting(Weight::Time, true);
        feed(&mut sink)?;
        let main = "MainThread (pid 1, tid 1)";
        assert_eq!(
            sink.take_lines(),
            [
                format!("{main};{F} 10"),
                format!("{main};{F};{G} 5"),
                format!("{main};{F};{G};[gc generation 2] 2"),
                format!("{main};{F};{G} 13"),
                format!("{main};{F} 10"),
                format!("{main};h (/a.py:9) 5"),
                format!("python3 (pid 1, tid 2);{F} 20"),
            ]
        );
        Ok(())
    }

    #[test]
    fn odd_input_does_not_panic() -> Result<()> {
        let s = StringTable::default();
        let t = Thread { pid: 1, tid: 1 };
        let mut sink = FoldedSink::collecting(Weight::Time, false);
        sink.end(t, 5, &[], &End::Returned, &s)?;
        sink.begin(t, 10, &[], &s)?;
        sink.begin(t, 3, &[frame(Item::Import { module: 7 })], &s)?;
        sink.end(t, 20, &[], &End::Returned, &s)?;
        sink.end(t, 30, &[], &End::Returned, &s)?;
        assert_eq!(
            sink.take_lines(),
            ["[unknown] 10", "[unknown];[import ] 10"]
        );
        Ok(())
    }

    #[test]
    fn frames_with_the_same_text_merge() -> Result<()> {
        let mut s = StringTable::default();
        let (a, b, file) = (s.push(b"f"), s.push(b"f"), s.push(b"/a.py"));
        let call = |funcname| {
            frame(Item::Call(Call {
                funcname,
                filename: file,
                lineno: 1,
            }))
        };
        let t = Thread { pid: 1, tid: 1 };
        let mut sink = FoldedSink::collecting(Weight::Calls, false);
        for (i, f) in [call(a), call(b), call(a)].iter().enumerate() {
            sink.begin(t, i as u64, std::slice::from_ref(f), &s)?;
            sink.end(t, i as u64, std::slice::from_ref(f), &End::Returned, &s)?;
        }
        assert_eq!(sink.take_lines(), ["f (/a.py:1) 3"]);
        Ok(())
    }
}
