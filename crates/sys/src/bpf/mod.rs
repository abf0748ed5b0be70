//! `bpf(2)`: maps ([`Map`]), program loading ([`Program`]) and attachment
//! links ([`Link`]), plus the kernel feature probe
//! [`uprobe_multi_supported`]. Every object is an fd created `O_CLOEXEC` by
//! the kernel and closed on drop; nothing is pinned, so the kernel frees all
//! of it when the process exits, however it exits.

mod attr;
mod map;
mod prog;

pub use map::Map;
pub use prog::{Link, Program, UprobeSites, uprobe_multi_supported};

/// `BPF_F_NO_PREALLOC`: hash maps allocate entries on demand.
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_F_MMAPABLE`: an array map whose values user space can mmap.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_F_RDONLY_PROG`: programs may only read the map.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_TRACE_UPROBE_MULTI`: the attach type of uprobe_multi links, also the
/// `expected_attach_type` their programs must be loaded with.
pub const BPF_TRACE_UPROBE_MULTI: u32 = 48;
/// `BPF_PERF_EVENT`: the attach type of links to a perf event.
pub const BPF_PERF_EVENT: u32 = 41;

/// `enum bpf_map_type`, the types pytap uses.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`.
    Hash = 1,
    /// `BPF_MAP_TYPE_ARRAY`: `u32` keys `0..max_entries`, zero-filled.
    Array = 2,
    /// `BPF_MAP_TYPE_PROG_ARRAY`: `u32` keys, program fds as values (what
    /// `bpf_tail_call` jumps to).
    ProgArray = 3,
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PercpuHash = 5,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PercpuArray = 6,
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LruHash = 9,
    /// `BPF_MAP_TYPE_LRU_PERCPU_HASH`.
    LruPercpuHash = 10,
    /// `BPF_MAP_TYPE_RINGBUF`.
    RingBuf = 27,
}

impl MapType {
    /// Whether values are per CPU (lookups return one value per possible CPU).
    pub fn is_per_cpu(self) -> bool {
        matches!(
            self,
            MapType::PercpuHash | MapType::PercpuArray | MapType::LruPercpuHash
        )
    }
}

/// `enum bpf_prog_type`, the types pytap uses.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgType {
    /// `BPF_PROG_TYPE_KPROBE`, which also serves uprobes; its context is
    /// `struct pt_regs`.
    Kprobe = 2,
    /// `BPF_PROG_TYPE_PERF_EVENT`: runs at each sample of a sampling perf
    /// event ([`crate::perf::Sampler`]); its context is `struct
    /// bpf_perf_event_data` (the interrupted `pt_regs`, then
    /// `sample_period` at byte 168 and `addr` at 176).
    PerfEvent = 7,
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT`: a kernel tracepoint's raw arguments
    /// (`u64 args[]`), attached with [`Link::raw_tracepoint`].
    RawTracepoint = 17,
}
