//! The stacks a script's probes walked (`jstack()`,
//! `sprint_pybacktrace()`), named: each sample of the script's samples ring
//! gets the id the kernel gave it (`codegen::script::stacks::stack_id`,
//! computed again here from its frames), and its frames are named at once
//! (`cpython::stack::sampled::name_frames`, the one place that does it)
//! while the code objects are alive. A key or a printed value that holds
//! an id prints its stack, as the dialect prints stacks.
//!
//! pytap tells the walk about the processes it may walk (the `procs` map):
//! the target, as soon as its CPython can be found (a shared libpython is
//! mapped only once the program runs, so it is looked for again until it
//! is).

use std::collections::HashMap;

use pytap_abi::sample::{MODE_ALL, ProcConfig};
use pytap_sys::ringbuf::RingBuf;

use crate::cpython::stack::code::Symbols;
use crate::cpython::stack::sampled::{self, SampledFrame};
use crate::engine::codegen::script::stacks::{frame_word, names, native_stack_id, stack_id};
use crate::engine::samples;
use crate::engine::session::Session;
use crate::process::native::{NativeFrame, NativeSymbols};
use crate::process::python::{self, Interpreter};

/// D's stack indent (libdtrace's `_dtrace_stkindent`).
const D_INDENT: usize = 14;

/// The stacks seen, by id.
#[derive(Default)]
pub struct Stacks {
    ring: Option<RingBuf>,
    /// Each stack's frames, innermost first, as `file:line (function)`.
    named: HashMap<u64, Vec<String>>,
    symbols: HashMap<u32, Symbols>,
    /// Each process's interpreter (`None`: it could not be found).
    interpreters: HashMap<u32, Option<Interpreter>>,
    /// Processes the walk knows.
    told: Vec<u32>,
    /// Each process's native symbols (`ustack()`).
    native: HashMap<u32, NativeSymbols>,
    /// The files (`st_dev`, inode) whose layouts the programs have, in
    /// their order (`ScriptStacks::layouts`): a profile probe walks a
    /// process with the layout its `ProcConfig::slot` names.
    layouts: Vec<(u64, u64)>,
    /// Stacks printed whose sample never arrived.
    pub unnamed: std::cell::Cell<u64>,
    /// Printed as D prints stacks (else as SystemTap does).
    d: bool,
    frames: Vec<SampledFrame>,
}

impl std::fmt::Debug for Stacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stacks")
            .field("named", &self.named.len())
            .finish_non_exhaustive()
    }
}

impl Stacks {
    /// No stacks yet; printed as D prints them when `d`.
    pub fn new(d: bool) -> Stacks {
        Stacks {
            d,
            ..Stacks::default()
        }
    }

    /// Keeps the order of the programs' layouts, by file (`st_dev`, inode).
    pub fn set_layouts(&mut self, layouts: Vec<(u64, u64)>) {
        self.layouts = layouts;
    }

    /// Tells the walk about process `pid` when its CPython can be found
    /// (again on later calls until it is). A session without the walk's
    /// maps (no probe walks stacks) has nothing to tell.
    pub fn tell(&mut self, session: &Session, pid: u32) {
        if pid == 0 || self.told.contains(&pid) {
            return;
        }
        let Some(map) = session.map_named(names::PROCS) else {
            return;
        };
        let Ok(interpreter) = python::find(pid) else {
            return;
        };
        let config = ProcConfig {
            runtime: interpreter.runtime.address,
            code_type: interpreter.runtime.code_type,
            // A file without a layout of the programs' is walked by none
            // of the profile probes' walks (marker probes' are their
            // module's).
            slot: self
                .layouts
                .iter()
                .position(|&k| k == (interpreter.module.dev, interpreter.module.inode))
                .map_or(u32::MAX, |i| i as u32),
            mode: MODE_ALL,
        };
        let mut value = Vec::with_capacity(24);
        value.extend_from_slice(&config.runtime.to_le_bytes());
        value.extend_from_slice(&config.code_type.to_le_bytes());
        value.extend_from_slice(&config.slot.to_le_bytes());
        value.extend_from_slice(&config.mode.to_le_bytes());
        if map.update(&pid.to_le_bytes(), &value, 0).is_ok() {
            self.told.push(pid);
            self.interpreters.insert(pid, Some(interpreter));
        }
    }

    /// Opens the samples ring of `session`, if its probes walk stacks.
    pub fn open(&mut self, session: &Session) {
        if self.ring.is_none()
            && let Some(map) = session.map_named(names::SAMPLES)
        {
            self.ring = RingBuf::new(map).ok();
        }
    }

    /// Reads the samples the probes sent and names the stacks not seen
    /// yet: as soon as the loop can (the process must still be there for
    /// its code objects to be read).
    pub fn drain(&mut self) {
        let Some(mut ring) = self.ring.take() else {
            return;
        };
        ring.consume(&mut |bytes| {
            self.sample(bytes);
            true
        });
        self.ring = Some(ring);
    }

    fn sample(&mut self, bytes: &[u8]) {
        let Ok(s) = samples::decode(bytes) else {
            return;
        };
        let h = s.header;
        if h.flags & pytap_abi::sample::FLAG_NATIVE_ONLY != 0 {
            let addresses: Vec<u64> = s.native.iter().map(|e| e.address).collect();
            let id = native_stack_id(&addresses);
            if !self.named.contains_key(&id) {
                let frames = self
                    .native
                    .entry(h.pid)
                    .or_insert_with(|| NativeSymbols::new(h.pid))
                    .name(&addresses);
                let lines = frames.iter().map(|f| native_line(f, self.d)).collect();
                self.named.insert(id, lines);
            }
            return;
        }
        let words: Vec<(u64, u64)> = s
            .frames
            .iter()
            .map(|f| (f.code, frame_word(f.offset, f.fingerprint)))
            .collect();
        let id = stack_id(h.depth, h.flags, &words);
        if self.named.contains_key(&id) {
            return;
        }
        let interpreter = self
            .interpreters
            .entry(h.pid)
            .or_insert_with(|| python::find(h.pid).ok());
        let mut lines = Vec::new();
        match interpreter {
            Some(interpreter) => {
                let symbols = self.symbols.entry(h.pid).or_default();
                sampled::name_frames(
                    symbols,
                    &interpreter.memory(),
                    &interpreter.runtime,
                    &s.frames,
                    h.flags,
                    &mut self.frames,
                );
                for f in &self.frames {
                    lines.push(match f {
                        SampledFrame::Code { code, line } => {
                            format!("{}:{} ({})", code.filename, line, code.function())
                        }
                        SampledFrame::Unknown(why) => why.label().to_string(),
                        // Only samples with native frames mark the eval
                        // loop's calls.
                        SampledFrame::Boundary(_) => continue,
                    });
                }
            }
            None => {
                lines.extend(
                    s.frames
                        .iter()
                        .map(|_| sampled::Unknown::Freed.label().to_string()),
                );
            }
        }
        if h.flags & pytap_abi::sample::FLAG_NO_THREAD != 0 {
            lines.push("<no Python thread state for this thread>".into());
        }
        self.named.insert(id, lines);
    }

    /// The frames of stack `id`, at most `nframes` (0: all).
    fn lines(&self, id: u64, nframes: usize) -> Vec<String> {
        if id == 0 {
            return Vec::new();
        }
        match self.named.get(&id) {
            Some(lines) => {
                let n = if nframes == 0 { lines.len() } else { nframes };
                lines.iter().take(n).cloned().collect()
            }
            None => {
                self.unnamed.set(self.unnamed.get() + 1);
                vec!["<unknown: the stack's sample was lost>".into()]
            }
        }
    }

    /// Stack `id` as the script's dialect prints it, at most `nframes`
    /// frames (0: all).
    pub fn text(&self, id: u64, nframes: usize) -> Vec<u8> {
        let lines = self.lines(id, nframes);
        if self.d {
            d_text(&lines)
        } else {
            lines.join("\n").into_bytes()
        }
    }
}

/// A stack as D prints one (libdtrace's `dt_print_stack`): a newline, then
/// each frame on a line of its own, indented.
fn d_text(lines: &[String]) -> Vec<u8> {
    let mut out = String::from("\n");
    for line in lines {
        out.push_str(&" ".repeat(D_INDENT));
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// A native frame as the dialect prints it: dtrace's `module`function`
/// (`module`0xADDRESS` where no symbol covers it), SystemTap's
/// `function [module]`.
fn native_line(f: &NativeFrame, d: bool) -> String {
    let base = f.file.rsplit('/').next().unwrap_or(&f.file);
    match (&f.function, d) {
        (Some(name), true) => format!("{base}`{name}"),
        (None, true) => format!("{base}`{:#x}", f.address),
        (Some(name), false) => format!("{name} [{base}]"),
        (None, false) => format!("{:#x} [{base}]", f.address),
    }
}

/// The frame count of a stack expression (`jstack(n)`; 0: all).
pub fn nframes(e: &pytap_script::ir::Expr) -> usize {
    match &e.kind {
        pytap_script::ir::ExprKind::Builtin(_, args) => match args.first().map(|a| &a.kind) {
            Some(pytap_script::ir::ExprKind::Long(n)) => (*n).max(0) as usize,
            _ => 0,
        },
        _ => 0,
    }
}

/// Samples the ring had no room for (the walk's counters, summed over CPUs).
pub fn lost(session: &Session) -> u64 {
    let Some(map) = session.map_named(names::COUNTERS) else {
        return 0;
    };
    let mut buf = vec![0u8; map.value_buffer_len()];
    let key = crate::engine::abi::COUNTER_LOST.to_le_bytes();
    if !map.lookup(&key, &mut buf).unwrap_or(false) {
        return 0;
    }
    buf.chunks(8)
        .map(|c| c.try_into().map_or(0, u64::from_le_bytes))
        .sum()
}
