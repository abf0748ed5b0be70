//! Marker probes run in pytap on the in-process capture's events: where
//! CPython 3.12–3.14 has no function markers, `python.function.entry`,
//! `process("python").mark("function__entry")` and D's
//! `python$target:::function-entry` clauses see the agent's events, in
//! pytap's interpreter, with the same globals (kernel maps) the kernel
//! probes of other modules use.

use pytap_script::interp::Context;
use pytap_script::ir::PointKind;

use super::runtime::Runtime;
use crate::cpython::Marker;
use crate::engine::abi::EventKind;
use crate::engine::decode::{Body, Event};
use crate::engine::session::Session;

/// Tells a function name's "address" from its file name's: the capture
/// gives both the code object's id.
const NAME_BIT: u64 = 1 << 62;

/// A probe's firing on an in-process event.
struct InProcessContext<'e, 's> {
    event: &'e Event<'e>,
    filename: (&'e [u8], u64),
    funcname: (&'e [u8], u64),
    lineno: i64,
    now_ns: i64,
    target: i64,
    session: &'s Session,
}

impl Context for InProcessContext<'_, '_> {
    fn pid(&self) -> i64 {
        i64::from(self.event.header.pid)
    }
    fn tid(&self) -> i64 {
        i64::from(self.event.header.tid)
    }
    fn ppid(&self) -> i64 {
        crate::target::proc::ids_of(self.event.header.pid).map_or(0, |(_, pp)| i64::from(pp))
    }
    fn uid(&self) -> i64 {
        0
    }
    fn cpu(&self) -> i64 {
        0
    }
    fn execname(&self) -> Vec<u8> {
        let h = &self.event.header;
        self.session
            .tasks
            .borrow()
            .comm(h.pid, h.tid)
            .as_bytes()
            .to_vec()
    }
    fn target(&self) -> i64 {
        self.target
    }
    fn now_ns(&self) -> i64 {
        self.now_ns
    }
    fn monotonic_ns(&self) -> i64 {
        self.event.header.ts_ns as i64
    }
    fn arg(&self, index: usize) -> i64 {
        match index {
            0 => self.filename.1 as i64,
            1 => self.funcname.1 as i64,
            2 => self.lineno,
            _ => 0,
        }
    }
    fn frame(&self) -> i64 {
        0
    }
    fn user_string(&mut self, addr: i64, max: Option<usize>) -> Result<Vec<u8>, String> {
        let bytes = match addr as u64 {
            a if a == self.filename.1 => self.filename.0,
            a if a == self.funcname.1 => self.funcname.0,
            _ => return Err(format!("{addr:#x} is not a string of this event")),
        };
        Ok(bytes[..max.unwrap_or(usize::MAX).min(bytes.len())].to_vec())
    }
}

impl Runtime<'_> {
    /// Runs the marker probes of `event`'s marker, in source order.
    pub(super) fn in_process_event(&mut self, event: &Event<'_>, session: &Session) {
        if self.error.is_some() || self.exited() {
            return;
        }
        let marker = match event.header.kind {
            EventKind::FunctionEntry => Marker::FunctionEntry,
            EventKind::FunctionReturn => Marker::FunctionReturn,
            EventKind::Line => Marker::Line,
            _ => return,
        };
        let Some(index) = Marker::ALL.iter().position(|m| *m == marker) else {
            return;
        };
        let Body::Function {
            filename,
            funcname,
            lineno,
        } = &event.body
        else {
            return;
        };
        let program = self.compiled.program.clone();
        for (i, probe) in program.probes.iter().enumerate() {
            if !matches!(probe.point.kind, PointKind::Marker { marker, .. } if marker == index) {
                continue;
            }
            let mut ctx = InProcessContext {
                event,
                filename: (filename.bytes, filename.ptr),
                funcname: (funcname.bytes, funcname.ptr | NAME_BIT),
                lineno: i64::from(*lineno),
                now_ns: self
                    .realtime_offset
                    .saturating_add(event.header.ts_ns as i64),
                target: self.target,
                session,
            };
            let result =
                self.with_context(Some(session), &[], &mut ctx, |interp, program, world| {
                    interp.overrides.clear();
                    interp.run_probe(program, &program.probes[i], world)
                });
            if let Err(e) = result {
                self.fail(e);
                return;
            }
        }
    }
}
