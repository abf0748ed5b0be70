//! The BTF reader on the running kernel's own `/sys/kernel/btf/vmlinux`:
//! it parses, and it finds the fields a stack sampler reads.

use pytap_ebpf::btf::{Btf, Kind, VMLINUX_PATH as VMLINUX};

fn vmlinux() -> Btf {
    assert!(
        std::path::Path::new(VMLINUX).exists(),
        "prerequisite missing: {VMLINUX} (a kernel built with CONFIG_DEBUG_INFO_BTF=y, Linux 5.4+)"
    );
    Btf::from_file(VMLINUX).unwrap_or_else(|e| panic!("{VMLINUX}: {e}"))
}

#[test]
fn finds_task_struct_thread_fsbase() {
    let btf = vmlinux();
    assert!(btf.type_count() > 10_000, "{} types", btf.type_count());
    let path = ["task_struct", "thread", "fsbase"];
    let offset = btf.member_offset(&path).unwrap();
    let member = btf.member(&path).unwrap();
    let size = btf.type_size(member.type_id).unwrap();
    println!("task_struct.thread.fsbase: byte {offset}, {size} bytes");
    assert_eq!(size, 8, "fsbase is an unsigned long");
    let task_size = btf
        .type_size(btf.find_composite("task_struct").unwrap())
        .unwrap();
    assert!(
        offset + size <= task_size,
        "inside a {task_size}-byte task_struct"
    );
    // The same offset, taken in two steps.
    let thread = btf.member_offset(&["task_struct", "thread"]).unwrap();
    let in_thread = btf.member_offset(&["thread_struct", "fsbase"]).unwrap();
    assert_eq!(offset, thread + in_thread);
    println!("task_struct.thread: byte {thread}; thread_struct.fsbase: byte {in_thread}");
}

#[test]
fn finds_fields_inside_anonymous_members_and_refuses_pointers() {
    let btf = vmlinux();
    // task_struct's pid and tgid are plain members; `__state` is an
    // unsigned int at the very start of every task_struct since 5.14.
    let pid = btf.member_offset(&["task_struct", "pid"]).unwrap();
    let tgid = btf.member_offset(&["task_struct", "tgid"]).unwrap();
    assert_eq!(tgid, pid + 4);
    println!("task_struct.pid: byte {pid}, tgid: byte {tgid}");
    // `struct page`'s `lru` lives in anonymous unions and structs.
    let lru = btf.member(&["page", "lru"]).unwrap();
    assert_eq!(lru.bit_offset % 8, 0);
    assert_eq!(
        btf.kind(btf.resolve(lru.type_id).unwrap()).unwrap(),
        Some(Kind::Struct)
    );
    // x86's thread_struct has a one-bit bitfield, `iopl_warn`.
    let warn = btf.member(&["thread_struct", "iopl_warn"]).unwrap();
    assert_eq!(warn.bitfield_bits, 1);
    assert!(btf.member_offset(&["thread_struct", "iopl_warn"]).is_err());
    // `mm` is a pointer: the path does not follow it.
    assert!(btf.member_offset(&["task_struct", "mm", "pgd"]).is_err());
}
