//! Kernel helper functions callable from tracing programs, identified by the
//! stable ids of `enum bpf_func_id` in `include/uapi/linux/bpf.h`, plus the
//! flag values those helpers take.
//!
//! Only helpers pytap emits are listed; adding one is a new variant with its
//! kernel id, a `name` arm and an entry in [`Helper::ALL`].

/// A kernel helper, with its kernel id as the discriminant.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Helper {
    /// `void *bpf_map_lookup_elem(map, key)`: pointer to the value or NULL.
    MapLookupElem = 1,
    /// `long bpf_map_update_elem(map, key, value, flags)`; see [`update_flags`].
    MapUpdateElem = 2,
    /// `long bpf_map_delete_elem(map, key)`.
    MapDeleteElem = 3,
    /// `u64 bpf_ktime_get_ns(void)`: monotonic clock, excluding suspend.
    KtimeGetNs = 5,
    /// `u32 bpf_get_smp_processor_id(void)`.
    GetSmpProcessorId = 8,
    /// `long bpf_tail_call(ctx, prog_array, index)`: runs the program at
    /// `index` in its place (does not return), or falls through when the
    /// slot is empty or the chain of tail calls is at its limit (33).
    TailCall = 12,
    /// `u64 bpf_get_current_pid_tgid(void)`: `tgid << 32 | pid`.
    GetCurrentPidTgid = 14,
    /// `u64 bpf_get_current_uid_gid(void)`: `gid << 32 | uid`.
    GetCurrentUidGid = 15,
    /// `long bpf_get_current_comm(buf, size)`.
    GetCurrentComm = 16,
    /// `u64 bpf_get_current_task(void)`: the current `task_struct` pointer.
    GetCurrentTask = 35,
    /// `long bpf_probe_read_user(dst, size, unsafe_ptr)`.
    ProbeReadUser = 112,
    /// `long bpf_probe_read_kernel(dst, size, unsafe_ptr)`.
    ProbeReadKernel = 113,
    /// `long bpf_probe_read_user_str(dst, size, unsafe_ptr)`: length including NUL.
    ProbeReadUserStr = 114,
    /// `long bpf_probe_read_kernel_str(dst, size, unsafe_ptr)`.
    ProbeReadKernelStr = 115,
    /// `long bpf_get_ns_current_pid_tgid(dev, ino, nsdata, size)`: ids as seen
    /// from a pid namespace, needed when the target runs in a container.
    GetNsCurrentPidTgid = 120,
    /// `long bpf_ringbuf_output(ringbuf, data, size, flags)`: copy into the ring.
    RingbufOutput = 130,
    /// `void *bpf_ringbuf_reserve(ringbuf, size, flags)`: pointer or NULL.
    RingbufReserve = 131,
    /// `void bpf_ringbuf_submit(data, flags)`.
    RingbufSubmit = 132,
    /// `void bpf_ringbuf_discard(data, flags)`.
    RingbufDiscard = 133,
    /// `u64 bpf_ringbuf_query(ringbuf, flags)`; see [`ringbuf_query`].
    RingbufQuery = 134,
    /// `u64 bpf_get_attach_cookie(ctx)`: the cookie given at attach time.
    GetAttachCookie = 174,
    /// `long bpf_loop(nr_loops, callback_fn, callback_ctx, flags)`.
    Loop = 181,
    /// `long bpf_strncmp(s1, s1_sz, s2)`: `s2` must be a read-only map value.
    Strncmp = 182,
}

impl Helper {
    /// Every helper, in id order.
    pub const ALL: [Helper; 23] = [
        Helper::MapLookupElem,
        Helper::MapUpdateElem,
        Helper::MapDeleteElem,
        Helper::KtimeGetNs,
        Helper::GetSmpProcessorId,
        Helper::TailCall,
        Helper::GetCurrentPidTgid,
        Helper::GetCurrentUidGid,
        Helper::GetCurrentComm,
        Helper::GetCurrentTask,
        Helper::ProbeReadUser,
        Helper::ProbeReadKernel,
        Helper::ProbeReadUserStr,
        Helper::ProbeReadKernelStr,
        Helper::GetNsCurrentPidTgid,
        Helper::RingbufOutput,
        Helper::RingbufReserve,
        Helper::RingbufSubmit,
        Helper::RingbufDiscard,
        Helper::RingbufQuery,
        Helper::GetAttachCookie,
        Helper::Loop,
        Helper::Strncmp,
    ];

    /// The kernel's helper id, as placed in a `call` instruction's `imm`.
    pub const fn id(self) -> i32 {
        self as i32
    }

    /// The kernel's name for the helper without the `bpf_` prefix, as the
    /// kernel disassembler prints it after `call`.
    pub const fn name(self) -> &'static str {
        match self {
            Helper::MapLookupElem => "map_lookup_elem",
            Helper::MapUpdateElem => "map_update_elem",
            Helper::MapDeleteElem => "map_delete_elem",
            Helper::KtimeGetNs => "ktime_get_ns",
            Helper::GetSmpProcessorId => "get_smp_processor_id",
            Helper::TailCall => "tail_call",
            Helper::GetCurrentPidTgid => "get_current_pid_tgid",
            Helper::GetCurrentUidGid => "get_current_uid_gid",
            Helper::GetCurrentComm => "get_current_comm",
            Helper::GetCurrentTask => "get_current_task",
            Helper::ProbeReadUser => "probe_read_user",
            Helper::ProbeReadKernel => "probe_read_kernel",
            Helper::ProbeReadUserStr => "probe_read_user_str",
            Helper::ProbeReadKernelStr => "probe_read_kernel_str",
            Helper::GetNsCurrentPidTgid => "get_ns_current_pid_tgid",
            Helper::RingbufOutput => "ringbuf_output",
            Helper::RingbufReserve => "ringbuf_reserve",
            Helper::RingbufSubmit => "ringbuf_submit",
            Helper::RingbufDiscard => "ringbuf_discard",
            Helper::RingbufQuery => "ringbuf_query",
            Helper::GetAttachCookie => "get_attach_cookie",
            Helper::Loop => "loop",
            Helper::Strncmp => "strncmp",
        }
    }

    /// The helper with this kernel id, if it is one this crate knows.
    pub fn from_id(id: i32) -> Option<Helper> {
        Helper::ALL.iter().copied().find(|h| h.id() == id)
    }
}

/// Flags for [`Helper::RingbufOutput`], [`Helper::RingbufSubmit`] and
/// [`Helper::RingbufDiscard`] (`BPF_RB_NO_WAKEUP`, `BPF_RB_FORCE_WAKEUP`).
/// Zero means the kernel's adaptive wakeup, which is right for most events.
pub const RB_NO_WAKEUP: u64 = 1;
/// Wake the consumer even if it has not caught up (`BPF_RB_FORCE_WAKEUP`).
pub const RB_FORCE_WAKEUP: u64 = 2;
/// [`Helper::RingbufQuery`] flag: bytes not yet consumed (`BPF_RB_AVAIL_DATA`).
pub const RB_AVAIL_DATA: u64 = ringbuf_query::AVAIL_DATA;

/// What [`Helper::RingbufQuery`] reports, selected by its `flags` argument.
pub mod ringbuf_query {
    /// Bytes produced but not yet consumed (`BPF_RB_AVAIL_DATA`).
    pub const AVAIL_DATA: u64 = 0;
    /// Size of the ring in bytes (`BPF_RB_RING_SIZE`).
    pub const RING_SIZE: u64 = 1;
    /// Consumer position (`BPF_RB_CONS_POS`).
    pub const CONS_POS: u64 = 2;
    /// Producer position (`BPF_RB_PROD_POS`).
    pub const PROD_POS: u64 = 3;
}

/// The `flags` argument of [`Helper::MapUpdateElem`] (and of the
/// `BPF_MAP_UPDATE_ELEM` syscall).
pub mod update_flags {
    /// Create the element or overwrite it (`BPF_ANY`).
    pub const ANY: u64 = 0;
    /// Create only; fail with `-EEXIST` if the key is present (`BPF_NOEXIST`).
    pub const NOEXIST: u64 = 1;
    /// Overwrite only; fail with `-ENOENT` if the key is absent (`BPF_EXIST`).
    pub const EXIST: u64 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_kernel_enum() {
        // Values of enum bpf_func_id, read from include/uapi/linux/bpf.h.
        let expected: [(&str, i32); 23] = [
            ("map_lookup_elem", 1),
            ("map_update_elem", 2),
            ("map_delete_elem", 3),
            ("ktime_get_ns", 5),
            ("get_smp_processor_id", 8),
            ("tail_call", 12),
            ("get_current_pid_tgid", 14),
            ("get_current_uid_gid", 15),
            ("get_current_comm", 16),
            ("get_current_task", 35),
            ("probe_read_user", 112),
            ("probe_read_kernel", 113),
            ("probe_read_user_str", 114),
            ("probe_read_kernel_str", 115),
            ("get_ns_current_pid_tgid", 120),
            ("ringbuf_output", 130),
            ("ringbuf_reserve", 131),
            ("ringbuf_submit", 132),
            ("ringbuf_discard", 133),
            ("ringbuf_query", 134),
            ("get_attach_cookie", 174),
            ("loop", 181),
            ("strncmp", 182),
        ];
        for (h, (name, id)) in Helper::ALL.iter().zip(expected) {
            assert_eq!(h.name(), name);
            assert_eq!(h.id(), id);
            assert_eq!(Helper::from_id(id), Some(*h));
        }
    }

    #[test]
    fn unknown_ids_are_none() {
        for id in [0, 4, 6, 999, -1, i32::MIN, i32::MAX] {
            assert_eq!(Helper::from_id(id), None);
        }
    }
}
