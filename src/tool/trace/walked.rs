//! `trace --stacks` from the walk in the markers' own programs
//! (`codegen::event_stack`): each gc, import and audit event waits for
//! the stack its program sent, paired by thread and timestamp
//! (`engine::stack_pairing`), and leaves, in its place among the other
//! events, with that stack named from the process's memory
//! (`cpython::stack::sampled`), or with one unknown frame that says why
//! there is none. What could not be read is counted for the summary.

use std::collections::HashMap;
use std::sync::Arc;

use pytap_abi::sample::FLAG_NO_THREAD;

use crate::cpython::stack::code::Symbols;
use crate::cpython::stack::sampled::{self, SampledFrame};
use crate::engine::abi::{COUNTER_STACKS_LOST, FLAG_IN_PROCESS};
use crate::engine::codegen::event_stack::EventStacks;
use crate::engine::decode::Event;
use crate::engine::samples::RawSample;
use crate::engine::source::Source;
use crate::engine::stack_pairing::{Paired, Pairing};
use crate::model::stack::{Frame, FuncId};

/// An event's line, waiting for its stack.
#[derive(Debug)]
pub struct Waiting {
    /// The JSON line, without `"stack"`.
    line: Vec<u8>,
    /// Why the process's stacks cannot be read, when pytap knows.
    why: Option<String>,
}

/// The events' stacks, paired and named.
#[derive(Debug, Default)]
pub struct Walked {
    pairing: Pairing<Waiting, Vec<Frame>>,
    symbols: HashMap<u32, Symbols>,
    named: Vec<SampledFrame>,
    /// Stacks with a frame that could not be named.
    unknown: u64,
    /// Stacks the kernel's ring had no room for (read at the end).
    lost: u64,
}

/// A frame that stands for what could not be read.
fn unknown(label: &str) -> Frame {
    Frame {
        func: FuncId {
            filename: Arc::from(""),
            funcname: Arc::from(label),
        },
        line: 0,
        entered_ns: 0,
        child_ns: 0,
    }
}

impl Walked {
    /// Whether an event that carries no stack can be written at once: it
    /// settles its thread first (a kernel record proves that the thread's
    /// earlier programs are over; the in-process capture's are read after
    /// the stacks and prove nothing).
    pub fn passes(&mut self, event: &Event<'_>) -> bool {
        let h = &event.header;
        if h.flags & FLAG_IN_PROCESS == 0 {
            self.pairing.settle(h.tid, h.ts_ns);
        }
        !EventStacks::carries(h.kind) && self.pairing.is_empty()
    }

    /// An event, its line made without the stack, in its place.
    pub fn event(&mut self, event: &Event<'_>, line: Vec<u8>, source: &dyn Source) {
        let h = &event.header;
        let carries = EventStacks::carries(h.kind);
        // A process pytap has not found yet (its libpython loaded after
        // its exec) is looked for again now: its next events get stacks.
        let why = match (carries, source.session()) {
            (true, Some(session)) => session
                .stacks
                .as_ref()
                .and_then(|s| s.borrow_mut().interpreter(&session.maps, h.pid).err()),
            _ => None,
        };
        self.pairing
            .event(h.pid, h.tid, h.ts_ns, carries, Waiting { line, why });
    }

    /// A stack an event's program sent, named now (its code objects are
    /// alive while the event is this recent).
    pub fn stack(&mut self, sample: &RawSample, source: &dyn Source) {
        let h = &sample.header;
        let Some(session) = source.session() else {
            return;
        };
        let Some(stacks) = &session.stacks else {
            return;
        };
        let mut stacks = stacks.borrow_mut();
        let frames = match stacks.interpreter(&session.maps, h.pid) {
            Ok(_) if h.flags & FLAG_NO_THREAD != 0 => {
                // A thread started since pytap read the thread list, past
                // what the walk scans: read it again for the next events.
                stacks.refresh_threads(&session.maps, h.pid);
                self.unknown += 1;
                vec![unknown("<unknown: no thread state found for this thread>")]
            }
            Ok(interpreter) => {
                let mem = interpreter.memory();
                let symbols = self.symbols.entry(h.pid).or_default();
                sampled::name_frames(
                    symbols,
                    &mem,
                    &interpreter.runtime,
                    &sample.frames,
                    h.flags,
                    &mut self.named,
                );
                let frames: Vec<Frame> = self
                    .named
                    .iter()
                    .rev()
                    .filter_map(|frame| match frame {
                        SampledFrame::Code { code, line } => Some(Frame {
                            func: FuncId {
                                filename: code.filename.clone(),
                                funcname: code.function().clone(),
                            },
                            line: i32::try_from(*line).unwrap_or(0),
                            entered_ns: 0,
                            child_ns: 0,
                        }),
                        SampledFrame::Unknown(why) => Some(unknown(why.label())),
                        // Only samples with native frames mark the eval
                        // loop's calls.
                        SampledFrame::Boundary(_) => None,
                    })
                    .collect();
                if self
                    .named
                    .iter()
                    .any(|f| matches!(f, SampledFrame::Unknown(_)))
                {
                    self.unknown += 1;
                }
                frames
            }
            Err(why) => {
                self.unknown += 1;
                vec![unknown(&format!("<unknown: {why}>"))]
            }
        };
        self.pairing.stack(h.pid, h.tid, h.ts_ns, frames);
    }

    /// The stack ring was drained from `before`.
    pub fn drained(&mut self, before: u64) {
        self.pairing.drained(before);
    }

    /// Thread `tid` ended.
    pub fn thread_ended(&mut self, tid: u32) {
        self.pairing.thread_ended(tid);
    }

    /// Process `pid` executed a program.
    pub fn process_executed(&mut self, pid: u32) {
        self.pairing.process_executed(pid);
    }

    /// The run is over: nothing waits any more.
    pub fn finish(&mut self, source: &dyn Source) {
        self.pairing.finish();
        if let Some(session) = source.session() {
            self.lost = session.counter(COUNTER_STACKS_LOST);
        }
    }

    /// The next line ready, in order.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        let (waiting, paired) = self.pairing.pop()?;
        let mut line = waiting.line;
        match paired {
            Paired::None => {}
            Paired::Stack(frames) => crate::output::event::add_stack(&mut line, &frames),
            Paired::Missing => {
                let label = match &waiting.why {
                    Some(why) => format!("<unknown: stack not read: {why}>"),
                    None => "<unknown: the stack's record did not arrive>".to_string(),
                };
                crate::output::event::add_stack(&mut line, &[unknown(&label)]);
            }
        }
        Some(line)
    }

    /// The summary's lines: what was not read, when anything was not.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let missing = self.pairing.missing;
        if missing > 0 {
            notes.push(format!(
                "{missing} gc, import or audit events have no stack (shown as one <unknown: …> \
                 frame): the process was not readable yet, or the stack was not sent"
            ));
        }
        if self.lost > 0 {
            notes.push(format!(
                "{} stacks found the stack ring full and were dropped",
                self.lost
            ));
        }
        if self.unknown > 0 {
            notes.push(format!(
                "{} stacks have frames pytap could not name (shown as <unknown: …>)",
                self.unknown
            ));
        }
        if self.pairing.orphans > 0 {
            notes.push(format!(
                "{} stacks arrived without their event and were dropped",
                self.pairing.orphans
            ));
        }
        notes
    }
}
