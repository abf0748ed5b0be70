//! What a script's run sums up at the end: the kernel's counters (cut
//! strings, skipped probe runs, full arrays, stacks the ring had no room
//! for) and the runtime's own.

use super::Runtime;
use crate::engine::abi;
use crate::engine::codegen::script::names;
use crate::engine::session::Session;

impl Runtime<'_> {
    /// The script's counters, for the summary.
    pub fn report(&self, session: &Session) {
        let Some(map) = session.map_named(names::COUNTERS) else {
            return;
        };
        use crate::engine::codegen::script::counter;
        let read = |i: u32| crate::engine::session::read_counter(map, i);
        let truncated = read(counter::TRUNCATED) + self.truncated;
        if truncated > 0 {
            crate::notice!(
                "{truncated} strings were longer than {} bytes and were cut",
                abi::STR_CAP - 1
            );
        }
        let busy = read(counter::SCRATCH_BUSY);
        if busy > 0 {
            crate::notice!(
                "{busy} probe runs were skipped: a probe preempted another on the same CPU while it used its scratch area"
            );
        }
        for (g, global) in self.compiled.program.globals.iter().enumerate() {
            let dropped = read(counter::FIRST_GLOBAL + g as u32);
            if dropped > 0 {
                crate::notice!(
                    "{dropped} updates of `{}` were dropped: the array is full ({} entries); declare it bigger, `global {}[N]`",
                    global.name,
                    global
                        .size
                        .unwrap_or(pytap_script::store::DEFAULT_ARRAY_SIZE),
                    global.name
                );
            }
        }
        if self.unreadable > 0 {
            crate::notice!(
                "{} strings could not be read in the traced process and were printed empty",
                self.unreadable
            );
        }
        let lost = crate::script::stacks::lost(session);
        if lost > 0 {
            crate::notice!(
                "{lost} Python stacks were lost: the stacks' ring had no room; their keys and values print as lost"
            );
        }
        let unnamed = self.stacks.unnamed.get();
        if unnamed > 0 {
            crate::notice!("{unnamed} stacks printed were never received, and print as lost");
        }
        if self.undecoded > 0 {
            crate::notice!(
                "{} array keys were left out: their strings were lost with the ring buffer's records",
                self.undecoded
            );
        }
    }
}
