//! The runtime as the run loop's consumer: records and in-process events
//! in, timers on the loop's ticks, `end` at the finish; a failed write to
//! the output ends the run.

use anyhow::Result;
use pytap_script::interp::RunError;

use super::Runtime;
use crate::engine::abi;
use crate::engine::consumer::Consumer;
use crate::engine::script_record;
use crate::engine::session::Session;
use crate::engine::source::Source;

/// The live session a script's records come from (scripts do not replay
/// recordings).
fn live(source: &dyn Source) -> Result<&Session> {
    source
        .session()
        .ok_or_else(|| anyhow::anyhow!("internal: a script runs on a live session"))
}

impl Consumer for Runtime<'_> {
    fn thread_exited(&mut self, _pid: u32, tid: u32) -> Result<()> {
        self.indents.remove(&i64::from(tid));
        self.interp.forget_thread(i64::from(tid));
        Ok(())
    }

    fn process_executed(&mut self, pid: u32, old_tid: u32) -> Result<()> {
        for tid in [pid, old_tid] {
            self.thread_exited(pid, tid)?;
        }
        Ok(())
    }

    fn event(
        &mut self,
        event: &crate::engine::decode::Event<'_>,
        source: &dyn Source,
    ) -> Result<()> {
        if event.header.flags & crate::engine::abi::FLAG_IN_PROCESS != 0 {
            let session = live(source)?;
            self.in_process_event(event, session);
            if let Some(e) = self.out_error.take() {
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn record(&mut self, bytes: &[u8], source: &dyn Source) -> Result<bool> {
        let Some(rec) = script_record::decode(bytes) else {
            return Ok(false);
        };
        let session = live(source)?;
        let rec = rec?;
        if self.error.is_some() || self.exited() {
            return Ok(true);
        }
        match rec.kind {
            abi::SCRIPT_OUTPUT => self.output(&rec, session),
            abi::SCRIPT_KEY => self.key(&rec, session),
            abi::SCRIPT_ERROR => {
                if let Some(site) = self.compiled.placement.errors.get(rec.id as usize) {
                    let e = RunError {
                        span: site.span,
                        message: site.message.clone(),
                    };
                    self.fail(e);
                }
            }
            _ => {}
        }
        if let Some(e) = self.out_error.take() {
            return Err(e.into());
        }
        Ok(true)
    }

    fn before_tick(&mut self, source: &dyn Source) -> Result<()> {
        if let Some(session) = source.session() {
            self.stacks.tell(session, self.target as u32);
            self.stacks.drain();
        }
        self.prepare(source.session())
    }

    fn tick(&mut self, source: &dyn Source) -> Result<()> {
        self.run_timers(source.session())?;
        if let Some(e) = self.out_error.take() {
            return Err(e.into());
        }
        Ok(())
    }

    fn finish(&mut self, source: &dyn Source) -> Result<()> {
        self.end(source.session());
        if let Some(e) = self.out_error.take() {
            return Err(e.into());
        }
        Ok(())
    }

    fn exit_requested(&self) -> bool {
        self.exited() || self.error.is_some()
    }

    fn flush(&mut self) -> Result<()> {
        // Whenever the loop is idle: stacks are named while their process
        // is there.
        self.stacks.drain();
        Ok(self.out.flush()?)
    }

    fn describe(&self, events: u64) -> String {
        format!("{events} records")
    }
}
