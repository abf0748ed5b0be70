//! The benchmark's split of the `trace` program (`pytap trace
//! --split-probe`): the same function-record program with one part left
//! out, so that `scripts/bench.py` can say, in one interleaved run, what
//! the string reads, the output and the rest each add to the traced
//! program. Nothing else uses these programs, and their records carry no
//! names.

use pytap_ebpf::ProgramBuilder;

use super::record::{Parts, RecordMaps, emit_packed_parts};
use super::{CodegenError, Env, Handler};
use crate::cpython::Marker;
use crate::engine::abi::EventKind;

/// Function records built without one of their parts.
#[derive(Debug, Clone, Copy)]
pub struct SplitProbe {
    /// Ring buffer, counters and staging buffer.
    pub maps: RecordMaps,
    /// What the program does (never [`Parts::Whole`]: that is `trace`).
    pub parts: Parts,
}

impl Handler for SplitProbe {
    fn handles(&self, marker: Marker) -> bool {
        matches!(
            marker,
            Marker::FunctionEntry | Marker::FunctionReturn | Marker::Line
        )
    }

    fn emit(&self, marker: Marker, b: &mut ProgramBuilder, env: &Env) -> Result<(), CodegenError> {
        emit_packed_parts(b, env, self.maps, EventKind::of(marker), None, self.parts);
        Ok(())
    }
}
