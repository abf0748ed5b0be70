//! Helpers shared by the integration tests: finding a function's file offset
//! in the running test binary, a cookie-keyed counting program, fd flags.

#![allow(
    dead_code,
    reason = "each test binary that includes this module uses a part of it"
)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use object::{Object, ObjectSegment, ObjectSymbol, SegmentFlags};
use pytap_ebpf::{Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size};
use pytap_sys::bpf::{Map, MapType, ProgType, Program};

/// Tests in one binary run on several threads, and a probe in our own process
/// sees every thread's calls: tests that attach probes take this lock.
static PROBE_LOCK: Mutex<()> = Mutex::new(());

pub fn probe_lock() -> MutexGuard<'static, ()> {
    PROBE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running test binary and the file offset of `symbol` in it: the
/// symbol's address translated through the executable PT_LOAD segment
/// (the test binary is PIE, so address and offset may differ).
pub fn probe_offset(symbol: &str) -> (PathBuf, u64) {
    let exe = std::env::current_exe().expect("current_exe");
    let data = std::fs::read(&exe).expect("read test binary");
    let file = object::File::parse(&*data).expect("parse ELF");
    let addr = file
        .symbols()
        .find(|s| s.name() == Ok(symbol))
        .unwrap_or_else(|| panic!("{symbol} not in .symtab"))
        .address();
    for seg in file.segments() {
        let SegmentFlags::Elf { p_flags, .. } = seg.flags() else {
            continue;
        };
        if p_flags.0 & object::elf::PF_X.0 != 0
            && addr >= seg.address()
            && addr < seg.address() + seg.size()
        {
            let (file_off, _) = seg.file_range();
            return (exe, addr - seg.address() + file_off);
        }
    }
    panic!("{symbol} at {addr:#x} is in no executable segment");
}

/// An ARRAY map of 8 u64 counters.
pub fn counters() -> Map {
    Map::create(MapType::Array, 4, 8, 8, 0, "test_counts").expect("create counters")
}

/// `counts[bpf_get_attach_cookie(ctx)] += 1` (lock xadd), for `counts`.
pub fn counting_program(counts: &Map, expected_attach_type: Option<u32>) -> Program {
    let mut b = ProgramBuilder::new("test_count");
    let key = b.alloc_stack(4, 4).unwrap();
    let done = b.new_label();
    b.call(Helper::GetAttachCookie); // r1 is still ctx
    b.stx(Size::W, Reg::FP, key.off, Reg::R0);
    b.ld_map_fd(Reg::R1, MapRef(0));
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
    b.mov64_imm(Reg::R1, 1);
    b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    b.bind(done);
    b.mov64_imm(Reg::R0, 0).exit();
    let prog = b.build().unwrap();
    let bytes = prog.to_bytes(&[counts.raw_fd()]).unwrap();
    Program::load(
        ProgType::Kprobe,
        expected_attach_type,
        &bytes,
        "GPL",
        prog.kernel_name(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", e.log))
}

/// Counter `i` of a [`counters`] map.
pub fn count(counts: &Map, i: u32) -> u64 {
    let mut v = [0u8; 8];
    assert!(counts.lookup(&i.to_ne_bytes(), &mut v).unwrap());
    u64::from_ne_bytes(v)
}

/// Whether `fd` has `FD_CLOEXEC`, from `/proc/self/fdinfo` (octal `flags`,
/// `O_CLOEXEC` = 0o2000000).
pub fn is_cloexec(fd: i32) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("flags line");
    let flags = u32::from_str_radix(flags.trim(), 8).unwrap();
    flags & 0o2000000 != 0
}
