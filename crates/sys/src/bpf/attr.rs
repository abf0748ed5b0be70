//! `union bpf_attr` members, one `#[repr(C)]` struct per command family, with
//! explicit padding so that every byte handed to the kernel is initialised.
//! Offsets are asserted at compile time against the uapi layout (checked with
//! `offsetof` on this kernel, see the project notes).

use std::mem::{offset_of, size_of};

use crate::sys::BpfAttr;

/// `BPF_MAP_CREATE`.
pub(crate) const MAP_CREATE: u32 = 0;
/// `BPF_MAP_LOOKUP_ELEM`.
pub(crate) const MAP_LOOKUP_ELEM: u32 = 1;
/// `BPF_MAP_UPDATE_ELEM`.
pub(crate) const MAP_UPDATE_ELEM: u32 = 2;
/// `BPF_MAP_DELETE_ELEM`.
pub(crate) const MAP_DELETE_ELEM: u32 = 3;
/// `BPF_MAP_GET_NEXT_KEY`.
pub(crate) const MAP_GET_NEXT_KEY: u32 = 4;
/// `BPF_PROG_LOAD`.
pub(crate) const PROG_LOAD: u32 = 5;
/// `BPF_RAW_TRACEPOINT_OPEN`.
pub(crate) const RAW_TRACEPOINT_OPEN: u32 = 17;
/// `BPF_MAP_FREEZE`.
pub(crate) const MAP_FREEZE: u32 = 22;
/// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`.
pub(crate) const MAP_LOOKUP_AND_DELETE_BATCH: u32 = 25;
/// `BPF_LINK_CREATE`.
pub(crate) const LINK_CREATE: u32 = 28;

/// The anonymous `BPF_MAP_CREATE` member, up to `map_name`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct MapCreate {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
    pub map_ifindex: u32,
}
const _: () = {
    assert!(offset_of!(MapCreate, map_flags) == 16);
    assert!(offset_of!(MapCreate, map_name) == 28);
    assert!(size_of::<MapCreate>() == 48);
};
// SAFETY: repr(C), only u32 and [u8; 16] fields, 48 bytes with no implicit
// padding (asserted above), matching the uapi prefix.
unsafe impl BpfAttr for MapCreate {}

/// The `BPF_MAP_*_ELEM`, `BPF_MAP_GET_NEXT_KEY` and `BPF_MAP_FREEZE` member.
/// `value` doubles as `next_key`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct MapElem {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}
const _: () = {
    assert!(offset_of!(MapElem, key) == 8);
    assert!(offset_of!(MapElem, value) == 16);
    assert!(offset_of!(MapElem, flags) == 24);
    assert!(size_of::<MapElem>() == 32);
};
// SAFETY: repr(C), integer fields with the padding made explicit, 32 bytes.
unsafe impl BpfAttr for MapElem {}

/// The `batch` member (`BPF_MAP_*_BATCH`).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct MapBatch {
    pub in_batch: u64,
    pub out_batch: u64,
    pub keys: u64,
    pub values: u64,
    pub count: u32,
    pub map_fd: u32,
    pub elem_flags: u64,
    pub flags: u64,
}
const _: () = {
    assert!(offset_of!(MapBatch, count) == 32);
    assert!(offset_of!(MapBatch, map_fd) == 36);
    assert!(offset_of!(MapBatch, flags) == 48);
    assert!(size_of::<MapBatch>() == 56);
};
// SAFETY: repr(C), integer fields, no implicit padding, 56 bytes.
unsafe impl BpfAttr for MapBatch {}

/// The `BPF_PROG_LOAD` member, up to `expected_attach_type`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct ProgLoad {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
}
const _: () = {
    assert!(offset_of!(ProgLoad, log_level) == 24);
    assert!(offset_of!(ProgLoad, log_buf) == 32);
    assert!(offset_of!(ProgLoad, prog_name) == 48);
    assert!(offset_of!(ProgLoad, expected_attach_type) == 68);
    assert!(size_of::<ProgLoad>() == 72);
};
// SAFETY: repr(C), integer fields, no implicit padding, 72 bytes.
unsafe impl BpfAttr for ProgLoad {}

/// The `link_create` member for `BPF_PERF_EVENT` (`perf_event.bpf_cookie`).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct LinkCreatePerf {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub bpf_cookie: u64,
}
const _: () = {
    assert!(offset_of!(LinkCreatePerf, bpf_cookie) == 16);
    assert!(size_of::<LinkCreatePerf>() == 24);
};
// SAFETY: repr(C), integer fields, no implicit padding, 24 bytes.
unsafe impl BpfAttr for LinkCreatePerf {}

/// The `link_create` member for `BPF_TRACE_UPROBE_MULTI`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct LinkCreateUprobeMulti {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub path: u64,
    pub offsets: u64,
    pub ref_ctr_offsets: u64,
    pub cookies: u64,
    pub cnt: u32,
    pub multi_flags: u32,
    pub pid: u32,
    pub _pad: u32,
}
const _: () = {
    assert!(offset_of!(LinkCreateUprobeMulti, path) == 16);
    assert!(offset_of!(LinkCreateUprobeMulti, cookies) == 40);
    assert!(offset_of!(LinkCreateUprobeMulti, cnt) == 48);
    assert!(offset_of!(LinkCreateUprobeMulti, multi_flags) == 52);
    assert!(offset_of!(LinkCreateUprobeMulti, pid) == 56);
    assert!(size_of::<LinkCreateUprobeMulti>() == 64);
};
// SAFETY: repr(C), integer fields, padding explicit, 64 bytes.
unsafe impl BpfAttr for LinkCreateUprobeMulti {}

/// The `raw_tracepoint` member (`BPF_RAW_TRACEPOINT_OPEN`), without the
/// cookie added in Linux 6.10.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawTracepointOpen {
    pub name: u64,
    pub prog_fd: u32,
    pub _pad: u32,
}
const _: () = {
    assert!(offset_of!(RawTracepointOpen, prog_fd) == 8);
    assert!(size_of::<RawTracepointOpen>() == 16);
};
// SAFETY: repr(C), integer fields, padding explicit, 16 bytes.
unsafe impl BpfAttr for RawTracepointOpen {}
