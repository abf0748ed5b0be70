//! The parts of Perfetto's trace protos the export writes: field numbers
//! (of `perfetto/protos/perfetto/trace/perfetto_trace.proto`) and the
//! pieces of packets built from them (packets on the one sequence, track
//! events, interned entries, debug annotations).

use super::super::protobuf::Encoder;

// Trace.
pub(super) const TRACE_PACKET: u32 = 1;
// TracePacket.
pub(super) const P_CLOCK_SNAPSHOT: u32 = 6;
pub(super) const P_TIMESTAMP: u32 = 8;
pub(super) const P_SEQUENCE_ID: u32 = 10;
pub(super) const P_TRACK_EVENT: u32 = 11;
pub(super) const P_INTERNED_DATA: u32 = 12;
pub(super) const P_SEQUENCE_FLAGS: u32 = 13;
pub(super) const P_DEFAULTS: u32 = 59;
pub(super) const P_TRACK_DESCRIPTOR: u32 = 60;
pub(super) const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
pub(super) const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
// TracePacketDefaults.
pub(super) const D_TIMESTAMP_CLOCK_ID: u32 = 58;
// ClockSnapshot, ClockSnapshot.Clock.
pub(super) const CS_CLOCKS: u32 = 1;
pub(super) const CS_PRIMARY_TRACE_CLOCK: u32 = 2;
pub(super) const CLOCK_ID: u32 = 1;
pub(super) const CLOCK_TIMESTAMP: u32 = 2;
pub(super) const BUILTIN_CLOCK_MONOTONIC: u64 = 3;
// InternedData; its entries (EventCategory, EventName, DebugAnnotationName,
// InternedString) are all {iid = 1, name/str = 2}.
pub(super) const I_EVENT_CATEGORIES: u32 = 1;
pub(super) const I_EVENT_NAMES: u32 = 2;
pub(super) const I_ANNOTATION_NAMES: u32 = 3;
pub(super) const I_STRING_VALUES: u32 = 29;
pub(super) const ENTRY_IID: u32 = 1;
pub(super) const ENTRY_NAME: u32 = 2;
// TrackDescriptor, ProcessDescriptor, ThreadDescriptor.
pub(super) const TD_UUID: u32 = 1;
pub(super) const TD_PROCESS: u32 = 3;
pub(super) const TD_THREAD: u32 = 4;
pub(super) const TD_PARENT_UUID: u32 = 5;
pub(super) const PD_PID: u32 = 1;
pub(super) const PD_NAME: u32 = 6;
pub(super) const THD_PID: u32 = 1;
pub(super) const THD_TID: u32 = 2;
pub(super) const THD_NAME: u32 = 5;
// TrackEvent.
pub(super) const TE_CATEGORY_IIDS: u32 = 3;
pub(super) const TE_ANNOTATIONS: u32 = 4;
pub(super) const TE_TYPE: u32 = 9;
pub(super) const TE_NAME_IID: u32 = 10;
pub(super) const TE_TRACK_UUID: u32 = 11;
pub(super) const TYPE_SLICE_BEGIN: u64 = 1;
pub(super) const TYPE_SLICE_END: u64 = 2;
pub(super) const TYPE_INSTANT: u64 = 3;
// DebugAnnotation.
pub(super) const DA_NAME_IID: u32 = 1;
pub(super) const DA_BOOL: u32 = 2;
pub(super) const DA_UINT: u32 = 3;
pub(super) const DA_INT: u32 = 4;
pub(super) const DA_STRING: u32 = 6;
pub(super) const DA_STRING_IID: u32 = 17;

/// The one packet sequence's id.
pub(super) const SEQUENCE_ID: u64 = 1;

/// A debug annotation named `name` (an iid) with a varint value as field
/// `field` (`DA_BOOL`, `DA_UINT`, `DA_INT`, `DA_STRING_IID`).
pub(super) fn annotation(e: &mut Encoder, name: u64, field: u32, value: u64) {
    e.begin(TE_ANNOTATIONS);
    e.uint(DA_NAME_IID, name);
    e.uint(field, value);
    e.end();
}

/// A debug annotation named `name` (an iid) with a string value.
pub(super) fn string_annotation(e: &mut Encoder, name: u64, value: &str) {
    e.begin(TE_ANNOTATIONS);
    e.uint(DA_NAME_IID, name);
    e.string(DA_STRING, value);
    e.end();
}

/// Opens a packet on the sequence (at `ts`, if it has a time).
pub(super) fn open_packet(e: &mut Encoder, ts: Option<u64>) {
    e.begin(TRACE_PACKET);
    if let Some(ts) = ts {
        e.uint(P_TIMESTAMP, ts);
    }
    e.uint(P_SEQUENCE_ID, SEQUENCE_ID);
    e.uint(P_SEQUENCE_FLAGS, SEQ_NEEDS_INCREMENTAL_STATE);
}

/// Opens a packet with a track event of `kind` on track `uuid`, first
/// interning an event name and a string value (`(iid, text)`) if given.
pub(super) fn open_event(
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
pub(super) fn entry(e: &mut Encoder, field: u32, iid: u64, name: &[u8]) {
    e.begin(field);
    e.uint(ENTRY_IID, iid);
    e.bytes(ENTRY_NAME, name);
    e.end();
}
