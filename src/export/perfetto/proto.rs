//! The parts of Perfetto's trace protos the exports write: field numbers
//! (of `perfetto/protos/perfetto/trace/perfetto_trace.proto`) and the
//! pieces of packets built from them (packets on the one sequence, the
//! clock, track events, interned entries, debug annotations), for the
//! timeline's export and a sampled profile's
//! ([`crate::export::profile::perfetto`]: `PerfSample`s and the interned
//! frames and callstacks they refer to).

use super::super::protobuf::Encoder;

// Trace.
pub(crate) const TRACE_PACKET: u32 = 1;
// TracePacket.
pub(crate) const P_CLOCK_SNAPSHOT: u32 = 6;
pub(crate) const P_TIMESTAMP: u32 = 8;
pub(crate) const P_SEQUENCE_ID: u32 = 10;
pub(crate) const P_TRACK_EVENT: u32 = 11;
pub(crate) const P_INTERNED_DATA: u32 = 12;
pub(crate) const P_SEQUENCE_FLAGS: u32 = 13;
pub(crate) const P_DEFAULTS: u32 = 59;
pub(crate) const P_TRACK_DESCRIPTOR: u32 = 60;
pub(crate) const P_PERF_SAMPLE: u32 = 66;
pub(crate) const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
pub(crate) const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
// TracePacketDefaults.
pub(crate) const D_TIMESTAMP_CLOCK_ID: u32 = 58;
// ClockSnapshot, ClockSnapshot.Clock.
pub(crate) const CS_CLOCKS: u32 = 1;
pub(crate) const CS_PRIMARY_TRACE_CLOCK: u32 = 2;
pub(crate) const CLOCK_ID: u32 = 1;
pub(crate) const CLOCK_TIMESTAMP: u32 = 2;
pub(crate) const BUILTIN_CLOCK_MONOTONIC: u64 = 3;
// InternedData; its entries (EventCategory, EventName, DebugAnnotationName,
// InternedString) are all {iid = 1, name/str = 2}.
pub(crate) const I_EVENT_CATEGORIES: u32 = 1;
pub(crate) const I_EVENT_NAMES: u32 = 2;
pub(crate) const I_ANNOTATION_NAMES: u32 = 3;
pub(crate) const I_STRING_VALUES: u32 = 29;
pub(crate) const ENTRY_IID: u32 = 1;
pub(crate) const ENTRY_NAME: u32 = 2;
// InternedData's stack profile tables: function names and mapping and
// source paths are InternedStrings ({iid = 1, str = 2}, as above).
pub(crate) const I_FUNCTION_NAMES: u32 = 5;
pub(crate) const I_FRAMES: u32 = 6;
pub(crate) const I_CALLSTACKS: u32 = 7;
pub(crate) const I_MAPPING_PATHS: u32 = 17;
pub(crate) const I_SOURCE_PATHS: u32 = 18;
pub(crate) const I_MAPPINGS: u32 = 19;
// Frame, Callstack, Mapping (profile_common.proto).
pub(crate) const FRAME_IID: u32 = 1;
pub(crate) const FRAME_FUNCTION_NAME_ID: u32 = 2;
pub(crate) const FRAME_MAPPING_ID: u32 = 3;
pub(crate) const FRAME_REL_PC: u32 = 4;
pub(crate) const FRAME_SOURCE_PATH_IID: u32 = 5;
pub(crate) const FRAME_LINE_NUMBER: u32 = 6;
pub(crate) const CALLSTACK_IID: u32 = 1;
pub(crate) const CALLSTACK_FRAME_IDS: u32 = 2;
pub(crate) const MAPPING_IID: u32 = 1;
pub(crate) const MAPPING_PATH_STRING_IDS: u32 = 7;
// PerfSample.
pub(crate) const PS_PID: u32 = 2;
pub(crate) const PS_TID: u32 = 3;
pub(crate) const PS_CALLSTACK_IID: u32 = 4;
// TrackDescriptor, ProcessDescriptor, ThreadDescriptor.
pub(crate) const TD_UUID: u32 = 1;
pub(crate) const TD_PROCESS: u32 = 3;
pub(crate) const TD_THREAD: u32 = 4;
pub(crate) const TD_PARENT_UUID: u32 = 5;
pub(crate) const PD_PID: u32 = 1;
pub(crate) const PD_NAME: u32 = 6;
pub(crate) const THD_PID: u32 = 1;
pub(crate) const THD_TID: u32 = 2;
pub(crate) const THD_NAME: u32 = 5;
// TrackEvent.
pub(crate) const TE_CATEGORY_IIDS: u32 = 3;
pub(crate) const TE_ANNOTATIONS: u32 = 4;
pub(crate) const TE_TYPE: u32 = 9;
pub(crate) const TE_NAME_IID: u32 = 10;
pub(crate) const TE_TRACK_UUID: u32 = 11;
pub(crate) const TYPE_SLICE_BEGIN: u64 = 1;
pub(crate) const TYPE_SLICE_END: u64 = 2;
pub(crate) const TYPE_INSTANT: u64 = 3;
// DebugAnnotation.
pub(crate) const DA_NAME_IID: u32 = 1;
pub(crate) const DA_BOOL: u32 = 2;
pub(crate) const DA_UINT: u32 = 3;
pub(crate) const DA_INT: u32 = 4;
pub(crate) const DA_STRING: u32 = 6;
pub(crate) const DA_STRING_IID: u32 = 17;

/// The one packet sequence's id.
pub(crate) const SEQUENCE_ID: u64 = 1;

/// The first packet's clock: a `ClockSnapshot` making `CLOCK_MONOTONIC`
/// (pytap's events' and samples' clock) the trace's clock at `ts`, and
/// packet defaults with that clock.
pub(crate) fn monotonic_clock(e: &mut Encoder, ts: u64) {
    e.begin(P_CLOCK_SNAPSHOT);
    e.begin(CS_CLOCKS);
    e.uint(CLOCK_ID, BUILTIN_CLOCK_MONOTONIC);
    e.uint(CLOCK_TIMESTAMP, ts);
    e.end();
    e.uint(CS_PRIMARY_TRACE_CLOCK, BUILTIN_CLOCK_MONOTONIC);
    e.end();
    e.begin(P_DEFAULTS);
    e.uint(D_TIMESTAMP_CLOCK_ID, BUILTIN_CLOCK_MONOTONIC);
    e.end();
}

/// A debug annotation named `name` (an iid) with a varint value as field
/// `field` (`DA_BOOL`, `DA_UINT`, `DA_INT`, `DA_STRING_IID`).
pub(crate) fn annotation(e: &mut Encoder, name: u64, field: u32, value: u64) {
    e.begin(TE_ANNOTATIONS);
    e.uint(DA_NAME_IID, name);
    e.uint(field, value);
    e.end();
}

/// A debug annotation named `name` (an iid) with a string value.
pub(crate) fn string_annotation(e: &mut Encoder, name: u64, value: &str) {
    e.begin(TE_ANNOTATIONS);
    e.uint(DA_NAME_IID, name);
    e.string(DA_STRING, value);
    e.end();
}

/// Opens a packet on the sequence (at `ts`, if it has a time).
pub(crate) fn open_packet(e: &mut Encoder, ts: Option<u64>) {
    e.begin(TRACE_PACKET);
    if let Some(ts) = ts {
        e.uint(P_TIMESTAMP, ts);
    }
    e.uint(P_SEQUENCE_ID, SEQUENCE_ID);
    e.uint(P_SEQUENCE_FLAGS, SEQ_NEEDS_INCREMENTAL_STATE);
}

/// Opens a packet with a track event of `kind` on track `uuid`, first
/// interning an event name and a string value (`(iid, text)`) if given.
pub(crate) fn open_event(
    e: &mut Encoder,
    (ts, uuid, kind): (u64, u64, u64),
    name: Option<(u64, &[u8])>,
    value: Option<(u64, &[u8])>,
) {
    open_packet(e, Some(ts));
    if name.is_some() || value.is_some() {
        e.begin(P_INTERNED_DATA);
        if let Some((iid, text)) = name {
            entry(e, I_EVENT_NAMES, iid, text);
        }
        if let Some((iid, text)) = value {
            entry(e, I_STRING_VALUES, iid, text);
        }
        e.end();
    }
    e.begin(P_TRACK_EVENT);
    e.uint(TE_TYPE, kind);
    e.uint(TE_TRACK_UUID, uuid);
}

/// An interned entry `{iid, name}` as field `field` of `InternedData`.
pub(crate) fn entry(e: &mut Encoder, field: u32, iid: u64, name: &[u8]) {
    e.begin(field);
    e.uint(ENTRY_IID, iid);
    e.bytes(ENTRY_NAME, name);
    e.end();
}
