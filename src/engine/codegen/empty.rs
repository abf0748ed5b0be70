//! The benchmark's baseline handler: a program that does nothing.

use pytap_ebpf::{Helper, ProgramBuilder};

use super::{CodegenError, Env, Handler};
use crate::cpython::Marker;

/// A handler that does nothing: its program is `r0 = 0; exit`, with no
/// dispatch at all. It measures what the kernel's uprobe costs by itself,
/// the baseline of pytap's benchmark (`scripts/bench.py`). With `clock`,
/// the program reads the clock once first (`bpf_ktime_get_ns`): the floor
/// of any tool that timestamps every event.
#[derive(Debug, Clone, Copy)]
pub struct EmptyProbe {
    /// Read the clock before exiting.
    pub clock: bool,
}

impl Handler for EmptyProbe {
    fn handles(&self, _: Marker) -> bool {
        false
    }

    fn emit(&self, _: Marker, _: &mut ProgramBuilder, _: &Env) -> Result<(), CodegenError> {
        Ok(())
    }

    fn emit_without_dispatch(&self, b: &mut ProgramBuilder) {
        if self.clock {
            b.call(Helper::KtimeGetNs);
        }
    }
}
