//! Marker probes run in pytap on the in-process capture's events: where
//! CPython 3.12–3.14 has no function markers, `python.function.entry`,
//! `process("python").mark("function__entry")` and D's
//! `python$target:::function-entry` clauses see the agent's events, in
//! pytap's interpreter, with the same globals (kernel maps) the kernel
//! probes of other modules use.

use pytap_script::interp::ProbeInfo;
use pytap_script::ir::PointKind;

use super::Runtime;
use crate::cpython::Marker;
use crate::engine::abi::EventKind;
use crate::engine::decode::{Body, Event};
use crate::engine::session::Session;
use crate::script::context::{MarkerArgs, RecordContext};

/// Tells a function name's "address" from its file name's: the capture
/// gives both the code object's id.
const NAME_BIT: u64 = 1 << 62;

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
            let h = &event.header;
            let mut ctx = RecordContext {
                probe: ProbeInfo::default(),
                marker: Some(MarkerArgs {
                    filename: (filename.bytes, filename.at.key()),
                    funcname: (funcname.bytes, funcname.at.key() | NAME_BIT),
                    lineno: i64::from(*lineno),
                }),
                pid: h.pid,
                tid: h.tid,
                // The agent records no CPU.
                cpu: 0,
                now_ns: self.realtime_offset.saturating_add(h.ts_ns as i64),
                monotonic_ns: h.ts_ns as i64,
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
