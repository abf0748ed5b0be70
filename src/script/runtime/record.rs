//! The kernel probes' records: an output site's values evaluated and
//! printed in the probe's context, a new key's definition (the strings an
//! address-keyed array's raw key names), strings recovered from the
//! binary when the probe could not read them.

use std::collections::HashMap;

use pytap_script::builtins::Builtin;
use pytap_script::interp::{self, ProbeInfo, World};
use pytap_script::value::Value;

use super::Runtime;
use crate::engine::codegen::script::placement::{KeyPart, LeafKind, Placement};
use crate::engine::script_record::{ScriptRecordView, ScriptStr};
use crate::engine::session::Session;
use crate::script::context::{Out, RecordContext};
use crate::script::store::ScriptStore;

impl Runtime<'_> {
    /// A string the kernel sent, recovered from the binary when the probe
    /// could not read it.
    fn text(
        &mut self,
        s: &ScriptStr<'_>,
        rec: &ScriptRecordView<'_>,
        session: &Session,
    ) -> Vec<u8> {
        if s.truncated {
            self.truncated += 1;
        }
        if s.ret > 0 || s.ptr == 0 {
            return s.bytes.to_vec();
        }
        match self.recovery.string(session, rec.site, rec.pid, s.ptr) {
            Some(b) => b,
            None => {
                self.unreadable += 1;
                Vec::new()
            }
        }
    }

    pub(super) fn output(&mut self, rec: &ScriptRecordView<'_>, session: &Session) {
        let placement = self.compiled.placement.clone();
        let program = self.compiled.program.clone();
        let Some(site) = placement.outputs.get(rec.id as usize) else {
            return;
        };
        self.outputs += 1;
        if site.leaves.iter().any(|l| l.kind == LeafKind::Stack) {
            // The walk sent the sample before this record.
            self.stacks.drain();
        }
        let mut longs = rec.longs();
        let mut strs = rec.strings();
        let mut overrides = std::mem::take(&mut self.interp.overrides);
        overrides.clear();
        for leaf in &site.leaves {
            let value = match leaf.kind {
                LeafKind::Long => Value::Long(longs.next().unwrap_or(0)),
                LeafKind::Stack => Value::Str(self.stacks.text(
                    longs.next().unwrap_or(0) as u64,
                    crate::script::stacks::nframes(&leaf.expr),
                )),
                LeafKind::Str => match strs.next() {
                    Some(s) => Value::Str(self.text(&s, rec, session)),
                    None => Value::Str(Vec::new()),
                },
                LeafKind::Indent { thread, kernel } => {
                    let (elapsed, depth) = if kernel {
                        (longs.next().unwrap_or(0), longs.next().unwrap_or(0))
                    } else {
                        // The same step the kernel would make, at the record's time.
                        let delta = longs.next().unwrap_or(0);
                        let now = (rec.ts_ns / 1000) as i64;
                        let key = if thread { i64::from(rec.tid) } else { -1 };
                        let state = self.indents.entry(key).or_insert((0, 0));
                        let depth = interp::indent_step(state, delta, now);
                        (now - state.1, depth)
                    };
                    let mut desc = Vec::new();
                    if thread {
                        let names = session.tasks.borrow();
                        desc.extend_from_slice(names.comm(rec.pid, rec.tid).as_bytes());
                        desc.push(b'(');
                        desc.extend_from_slice(itoa::Buffer::new().format(rec.tid).as_bytes());
                        desc.push(b')');
                    }
                    Value::Str(interp::indent_text(elapsed, &desc, depth))
                }
            };
            overrides.insert(leaf.expr.id, value);
        }
        self.interp.overrides = overrides;
        let probe = &program.probes[site.probe];
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        frame.extend(probe.locals.iter().map(|l| Value::zero(l.ty)));
        let probe = match &mut self.probes {
            Some(table) => table.info(&session.plan, rec.site),
            None => ProbeInfo::default(),
        };
        let mut ctx = RecordContext {
            probe,
            marker: None,
            pid: rec.pid,
            tid: rec.tid,
            cpu: rec.cpu,
            now_ns: self.realtime_offset.saturating_add(rec.ts_ns as i64),
            monotonic_ns: rec.ts_ns as i64,
            target: self.target,
            session,
        };
        let mut store = ScriptStore {
            mem: &mut self.mem,
            session: Some(session),
            program: &program,
            placement: &placement,
            keys: &self.keys,
            epochs: &self.epochs,
            old: &[],
            undecoded: &mut self.undecoded,
            stacks: &self.stacks,
            cache: HashMap::new(),
        };
        let mut out = Out {
            out: self.out,
            error: &mut self.out_error,
            header: &mut self.header,
        };
        let mut world = World {
            ctx: &mut ctx,
            store: &mut store,
            out: &mut out,
        };
        let result = self
            .interp
            .eval_with(&program, &site.expr, &mut frame, &mut world);
        self.interp.overrides.clear();
        self.frame = frame;
        if let Err(e) = result {
            self.fail(e);
        }
    }

    pub(super) fn key(&mut self, rec: &ScriptRecordView<'_>, session: &Session) {
        let g = rec.id as usize;
        let Some(kg) = self.compiled.placement.globals.get(g).cloned().flatten() else {
            return;
        };
        let mut strs = rec.strings();
        let mut keys = Vec::new();
        for (i, part) in kg.key.iter().enumerate() {
            let at = kg.key_offset(i) as usize;
            let word = rec
                .key
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, i64::from_le_bytes);
            match part {
                KeyPart::Tgid => {}
                KeyPart::Long => keys.push(Value::Long(word)),
                KeyPart::Address => {
                    let text = match strs.next() {
                        Some(s) => self.text(&s, rec, session),
                        None => Vec::new(),
                    };
                    keys.push(Value::Str(text));
                }
                KeyPart::Stack => {
                    self.stacks.drain();
                    keys.push(Value::Str(self.stacks.text(word as u64, 0)));
                }
                KeyPart::Bytes => {}
            }
        }
        self.keys.insert((g, rec.key.to_vec()), keys);
    }
}

/// Whether some output of a kernel probe prints what only the site names
/// (D's `probefunc`, `probemod`, the firing line's ID).
pub(super) fn names_probes(placement: &Placement) -> bool {
    placement.outputs.iter().any(|site| {
        let mut found = false;
        pytap_script::check::walk(&site.expr, &mut |e| {
            found |= matches!(
                e.kind,
                pytap_script::ir::ExprKind::Builtin(
                    Builtin::Probefunc | Builtin::Probemod | Builtin::ProbeId,
                    _
                )
            );
        });
        found
    })
}
