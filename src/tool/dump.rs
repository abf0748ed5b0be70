//! `pytap dump`: every thread's Python stack now, read from outside the
//! process (`process_vm_readv`): nothing is injected, nothing is stopped,
//! no markers are needed.
//!
//! Per thread: its ids and name, whether it holds the GIL, whether it is
//! on a CPU, and its frames innermost first with function (the qualified
//! name on 3.11+), file and line. A frame read while the thread moved on
//! ends that thread's stack with a note, never with a wrong name.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use crate::cpython::stack::code::{self, CodeInfo};
use crate::cpython::stack::locals;
use crate::cpython::stack::walk::{self, RawThread};
use crate::error::{ExitCode, TargetError};
use crate::output::escape;
use crate::process::proc;
use crate::process::python::{self, Interpreter};

/// What to dump.
#[derive(Debug, Clone)]
pub struct DumpRequest {
    /// The processes.
    pub pids: Vec<u32>,
    /// Every Python process on the machine instead.
    pub all: bool,
    /// JSON Lines instead of text.
    pub json: bool,
    /// Frames per thread at most.
    pub max_depth: usize,
    /// Each frame's local variables too.
    pub locals: bool,
}

/// One frame of `pytap dump --format jsonl` (schema: docs/output.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpFrame {
    /// The qualified name on 3.11+, else the name.
    pub function: String,
    /// `co_name`.
    pub name: String,
    /// `co_filename`.
    pub file: String,
    /// The line being run (`null`: an instruction without one).
    pub line: Option<u32>,
    /// `co_firstlineno`.
    pub first_line: u32,
    /// Its local variables (with `--locals`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locals: Option<Vec<DumpLocal>>,
}

/// A local variable of `pytap dump --locals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpLocal {
    /// Its name.
    pub name: String,
    /// Its value: `repr` for None, bool, int, float, str, bytes; the size of
    /// a list, tuple, dict or set; the type of anything else.
    pub value: String,
}

/// One thread (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpThread {
    /// The process.
    pub pid: u32,
    /// The thread's id, `null` when it cannot be told.
    pub tid: Option<u32>,
    /// `threading.get_ident()`: the thread's `pthread_t`.
    pub thread_id: u64,
    /// `comm`.
    pub name: Option<String>,
    /// Whether it holds the GIL.
    pub gil: bool,
    /// Whether it is on a CPU or runnable (`R`).
    pub active: bool,
    /// The scheduler's state letter.
    pub state: Option<String>,
    /// The CPython version.
    pub python: String,
    /// Frames, innermost first.
    pub frames: Vec<DumpFrame>,
    /// Frames left out past `--max-depth`.
    pub truncated: bool,
    /// Why the stack ends early, if it does.
    pub error: Option<String>,
}

/// Dumps the requested processes; an unreadable one is an error (one
/// line) unless `--all`, which skips what it cannot read.
pub fn run(request: &DumpRequest, out: &mut dyn Write) -> Result<ExitCode> {
    let pids = if request.all {
        let me = std::process::id();
        proc::all_pids()
            .map_err(|e| TargetError::io("/proc", e))?
            .into_iter()
            .filter(|p| *p != me)
            .collect()
    } else {
        request.pids.clone()
    };
    let mut dumped = 0;
    for pid in pids {
        let interpreter = match python::find(pid) {
            Ok(i) => i,
            Err(_) if request.all => continue,
            Err(e) => return Err(e.into()),
        };
        let threads = match read(&interpreter, request.max_depth, request.locals) {
            Ok(t) => t,
            Err(_) if request.all => continue,
            Err(e) => return Err(e.into()),
        };
        if request.json {
            for t in &threads {
                serde_json::to_writer(&mut *out, t)?;
                out.write_all(b"\n")?;
            }
        } else {
            write_text(&interpreter, &threads, out)?;
        }
        dumped += 1;
    }
    Ok(if dumped == 0 {
        ExitCode::NothingTraced
    } else {
        ExitCode::Ok
    })
}

/// Reads every thread of the interpreter, named.
pub fn read(
    interpreter: &Interpreter,
    max_depth: usize,
    with_locals: bool,
) -> Result<Vec<DumpThread>, TargetError> {
    let mem = interpreter.memory();
    let rt = &interpreter.runtime;
    let refuse = |reason: String| TargetError::Stacks {
        label: interpreter.process.label(),
        reason,
    };
    let (raw, _cut) = walk::threads(&mem, rt, max_depth).map_err(|e| refuse(e.to_string()))?;
    check_layout(interpreter, &raw).map_err(refuse)?;
    let tasks = proc::tasks(interpreter.process.pid);
    let tids = interpreter.thread_tids(&raw, &tasks);
    let mut codes: HashMap<u64, Option<CodeInfo>> = HashMap::new();
    // `3.8` when the file says only its minor version.
    let python = interpreter.module.version_suffix().trim().to_string();
    Ok(raw
        .iter()
        .zip(tids)
        .map(|(t, tid)| {
            let task = tid.and_then(|tid| tasks.iter().find(|k| k.tid == tid));
            let mut error = t.error.map(|e| e.to_string());
            let mut frames = Vec::with_capacity(t.frames.len());
            for f in &t.frames {
                let info = codes
                    .entry(f.code)
                    .or_insert_with(|| code::read(&mem, rt, f.code).ok());
                let Some(info) = info else {
                    error = Some(format!(
                        "the code object at {:#x} could not be read",
                        f.code
                    ));
                    break;
                };
                frames.push(DumpFrame {
                    function: info.function().to_string(),
                    name: info.name.to_string(),
                    file: info.filename.to_string(),
                    line: info
                        .lines
                        .line_at(rt.layout.byte_offset(f.position, f.code)),
                    first_line: info.first_line,
                    locals: with_locals.then(|| {
                        locals::read(&mem, rt, f.frame, f.code)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|l| DumpLocal {
                                name: l.name,
                                value: l.value,
                            })
                            .collect()
                    }),
                });
            }
            DumpThread {
                pid: interpreter.process.pid,
                tid,
                thread_id: t.thread_id,
                name: task.map(|k| k.name.clone()),
                gil: t.holds_gil,
                active: task.is_some_and(|k| k.state == 'R'),
                state: task.map(|k| k.state.to_string()),
                python: python.clone(),
                frames,
                truncated: t.truncated,
                error,
            }
        })
        .collect())
}

/// A layout that does not fit the process shows at once: no thread's
/// innermost frame points to a code object. Refuse rather than print
/// nonsense.
fn check_layout(interpreter: &Interpreter, raw: &[RawThread]) -> Result<(), String> {
    let with_frames: Vec<&RawThread> = raw
        .iter()
        .filter(|t| !t.frames.is_empty() || t.error.is_some())
        .collect();
    if !with_frames.is_empty() && with_frames.iter().all(|t| t.frames.is_empty()) {
        return Err(format!(
            "the layout pytap has for CPython {} does not match {} (no thread's frame \
             points to a code object); pytap will not guess",
            interpreter.version,
            interpreter.module.path.display()
        ));
    }
    Ok(())
}

fn write_text(
    interpreter: &Interpreter,
    threads: &[DumpThread],
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(
        out,
        "Process {} (pid {}): CPython{} ({})",
        escape::text(&interpreter.process.comm),
        interpreter.process.pid,
        interpreter.module.version_suffix(),
        escape::text(&interpreter.module.path.display().to_string())
    )?;
    for t in threads {
        let tid = t.tid.map_or_else(|| "?".to_string(), |t| t.to_string());
        let mut notes = vec![
            format!("tid {tid}"),
            (if t.active { "active" } else { "idle" }).into(),
        ];
        if t.gil {
            notes.push("holds the GIL".into());
        }
        let name = t.name.as_deref().map(escape::text).unwrap_or_default();
        writeln!(out, "Thread \"{name}\" ({})", notes.join(", "))?;
        for f in &t.frames {
            let line = f.line.map_or_else(|| "?".to_string(), |l| l.to_string());
            writeln!(
                out,
                "    {} ({}:{line})",
                escape::text(&f.function),
                escape::text(&f.file)
            )?;
            for local in f.locals.iter().flatten() {
                writeln!(
                    out,
                    "        {} = {}",
                    escape::text(&local.name),
                    escape::text(&local.value)
                )?;
            }
        }
        if t.truncated {
            writeln!(out, "    … (more frames past --max-depth)")?;
        }
        if let Some(e) = &t.error {
            writeln!(out, "    … ({e})")?;
        }
    }
    writeln!(out)?;
    Ok(())
}
