//! The Python stack of a gc, import or audit event, walked in the marker's
//! own program (`pytap trace --stacks`): once the event's record is
//! published, the program goes on into [`pystack::emit_walk`], which sends
//! the thread's stack at that moment to the stack ring stamped with the
//! event's timestamp. pytap pairs the two by thread and timestamp
//! (`engine::stack_pairing`). Nothing follows calls: no function probe is
//! needed and none pays for it, on any version with these markers.
//!
//! The walk is built with the layout the module's file says
//! ([`Env::stack`]); the processes it reads are the ones pytap put in its
//! `procs` map (`engine::session::stacks`). A dropped or lost record is
//! not walked: no stack is sent for an event that was not.

use pytap_ebpf::{MapRef, ProgramBuilder, Reg};

use super::pystack::{self, WalkFor, WalkMaps};
use super::record::After;
use super::{CodegenError, Env, MapTable};
use crate::engine::abi::{COUNTER_STACKS_LOST, EventKind};

/// The stack ring's size: a stack is at most 2 KiB (128 frames), and
/// events that carry one are a few thousand a second at most.
pub const RING_BYTES: u32 = 4 << 20;

/// The walk's maps and the kernel's thread-pointer offset.
#[derive(Debug, Clone, Copy)]
pub struct EventStacks {
    /// Its maps (the session's counters count what the ring had no room for).
    pub maps: WalkMaps,
    /// `task_struct.thread.fsbase` on this kernel.
    pub fsbase: u32,
}

impl EventStacks {
    /// The walk's maps, added to `table`, counting lost stacks in
    /// `counters[COUNTER_STACKS_LOST]`.
    pub fn add_to(table: &mut MapTable, counters: MapRef, fsbase: u32) -> EventStacks {
        EventStacks {
            maps: pystack::walk_maps(
                table,
                &pystack::WALK_NAMES,
                RING_BYTES,
                counters,
                COUNTER_STACKS_LOST,
            ),
            fsbase,
        }
    }

    /// Whether events of `kind` carry a stack.
    pub fn carries(kind: EventKind) -> bool {
        matches!(
            kind,
            EventKind::GcStart
                | EventKind::GcDone
                | EventKind::ImportStart
                | EventKind::ImportDone
                | EventKind::Audit
        )
    }

    /// Where a record of `kind` goes on once published, when its module's
    /// stacks can be walked: [`EventStacks::emit`] binds it.
    pub fn after(
        &self,
        b: &mut ProgramBuilder,
        env: &Env,
        kind: EventKind,
    ) -> Result<Option<After>, CodegenError> {
        if env.stack.is_none() || !Self::carries(kind) {
            return Ok(None);
        }
        Ok(Some(After {
            ts_slot: b.alloc_stack(8, 8)?.off,
            label: b.new_label(),
        }))
    }

    /// The walk, at `after`'s label, then exit.
    pub fn emit(
        &self,
        b: &mut ProgramBuilder,
        env: &Env,
        after: After,
    ) -> Result<(), CodegenError> {
        let layout = env
            .stack
            .ok_or_else(|| CodegenError::Internal("a stack walk without a layout".into()))?;
        b.bind(after.label);
        b.comment("the event's Python stack, stamped with its timestamp");
        pystack::emit_walk(
            b,
            &layout,
            self.fsbase,
            self.maps,
            WalkFor::Event {
                ts_slot: after.ts_slot,
            },
        )?;
        b.mov64_imm(Reg::R0, 0).exit();
        Ok(())
    }
}
