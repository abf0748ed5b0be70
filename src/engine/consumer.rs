//! What receives the events of a run, live or replayed (the tools' views,
//! the recorder, the scripts' runtime), and why a run ends ([`End`]). The runner (`crate::runner`) calls
//! it; every event source hands it the same decoded [`Event`]s.

use anyhow::Result;

use super::decode::Event;
use super::source::Source;

/// Receives the events of a run.
pub trait Consumer {
    /// One event, in ring-buffer order (per thread, the order they happened).
    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()>;

    /// Called every tick of the run (`LoopOptions::tick` live, recorded time replayed), and once more at the end.
    fn tick(&mut self, _source: &dyn Source) -> Result<()> {
        Ok(())
    }

    /// Strings the consumer had to read from the binary (for the summary).
    fn recovered(&self) -> u64 {
        0
    }

    /// Called once when the run ends, after the last events and tick.
    fn finish(&mut self, _source: &dyn Source) -> Result<()> {
        Ok(())
    }

    /// Whether the consumer wants the run to end (a live view's `q`).
    fn wants_stop(&self) -> bool {
        false
    }

    /// Whether a script called `exit()`: the run ends ([`End::Exit`]).
    fn exit_requested(&self) -> bool {
        false
    }

    /// A record of a kind the engine does not decode (a script's):
    /// `true` when the consumer took it.
    fn record(&mut self, _bytes: &[u8], _source: &dyn Source) -> Result<bool> {
        Ok(false)
    }

    /// Called before the ring buffer is drained for a tick that is due:
    /// what must happen before the tick's last records are read (a
    /// script's timer swaps the maps it reads and deletes).
    fn before_tick(&mut self, _source: &dyn Source) -> Result<()> {
        Ok(())
    }

    /// Writes out what the consumer buffered: called whenever the loop goes
    /// idle, and at least every `runner::pump::FLUSH_EVERY` while events arrive.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Bytes typed on a live view's terminal.
    fn input(&mut self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Bytes the launched command wrote to its terminal (a live view keeps
    /// them for when it closes).
    fn command_output(&mut self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    /// A thread of process `pid` ended, after its last event: what the
    /// consumer keeps for it can go (a thread id is reused later for
    /// another thread, which starts afresh).
    fn thread_exited(&mut self, _pid: u32, _tid: u32) -> Result<()> {
        Ok(())
    }

    /// Process `pid` executed a new program (through its thread
    /// `old_tid`, which now has the process's id), after the old
    /// program's last event: every frame of the old program is gone.
    fn process_executed(&mut self, _pid: u32, _old_tid: u32) -> Result<()> {
        Ok(())
    }

    /// What the events were, for the summary (`12 events`).
    fn describe(&self, events: u64) -> String {
        format!("{events} events")
    }

    /// The Python stack an event's program walked after its record
    /// (`trace --stacks`, `codegen::event_stack`), stamped with the
    /// event's thread and timestamp. Every stack a drain of the stack ring
    /// found comes before the kernel records read before that drain.
    fn stack(&mut self, _sample: &super::samples::RawSample, _source: &dyn Source) -> Result<()> {
        Ok(())
    }

    /// The stack ring was drained, from `before` (CLOCK_MONOTONIC ns read
    /// before the drain).
    fn stacks_drained(&mut self, _before: u64) -> Result<()> {
        Ok(())
    }

    /// Lines of the summary of the consumer's own, after the run's.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every followed process exited; the launched command's status if any.
    Exited {
        /// How the launched command ended, if there was one.
        status: Option<pytap_sys::process::ExitStatus>,
    },
    /// A signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) asked pytap to stop.
    Signal(i32),
    /// `--duration` elapsed.
    Duration,
    /// The user quit a live view.
    Quit,
    /// A script called `exit()`.
    Exit,
    /// A process followed by pid executed a program that is not a Python
    /// with markers, and no other was left.
    Exec {
        /// The process.
        pid: u32,
        /// What it executed.
        exe: String,
    },
    /// The reader of pytap's output went away (`pytap … | head`).
    OutputClosed,
    /// The live view's terminal went away (end of file, hang-up, error).
    TerminalLost,
}

/// What consumes a stack sampler's samples (`runner::sampling`).
pub trait SampleConsumer {
    /// A sample the kernel took, of a process whose interpreter is
    /// `interpreter` (to name its frames by).
    fn sample(
        &mut self,
        sample: &crate::engine::samples::RawSample,
        interpreter: &crate::process::python::Interpreter,
    ) -> Result<()>;

    /// A thread's stack read from outside at a wall-clock period (`wall`
    /// mode), `tid` in pytap's namespace when known.
    fn wall_sample(
        &mut self,
        thread: &crate::cpython::stack::walk::RawThread,
        tid: Option<u32>,
        interpreter: &crate::process::python::Interpreter,
        period: std::time::Duration,
    ) -> Result<()>;

    /// Called at the run's tick (a live view redraws).
    fn tick(&mut self) -> Result<()> {
        Ok(())
    }

    /// The run is over.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
