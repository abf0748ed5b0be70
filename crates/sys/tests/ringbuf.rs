//! The ring-buffer consumer against records produced by a real uprobe
//! program, and epoll wake-ups on the ring fd.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::{probe_lock, probe_offset};
use pytap_ebpf::{Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size};
use pytap_sys::bpf::{BPF_TRACE_UPROBE_MULTI, Link, Map, MapType, ProgType, Program, UprobeSites};
use pytap_sys::poll::Poller;
use pytap_sys::ringbuf::RingBuf;

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pytap_sys_test_ring(x: u64) -> u64 {
    std::hint::black_box(x) ^ 1
}

const MAGIC: u64 = 0x1122_3344_5566_7788;
/// Arguments with this bit set are discarded instead of submitted.
const DISCARD_BIT: u64 = 1 << 30;
const RECORD: usize = 16;
/// 8-byte header + 16-byte sample.
const RECORD_SPACE: u64 = 24;

/// Reserves 16 bytes, writes `{ rdi, MAGIC }` and submits with `flags`, or
/// discards when `rdi & DISCARD_BIT`.
fn ring_program(ring: &Map, submit_flags: i32) -> Program {
    let mut b = ProgramBuilder::new("test_ring");
    let out = b.new_label();
    let discard = b.new_label();
    b.ldx(Size::DW, Reg::R7, Reg::R1, 112); // pt_regs->di
    b.ld_map_fd(Reg::R1, MapRef(0));
    b.mov64_imm(Reg::R2, RECORD as i32).mov64_imm(Reg::R3, 0);
    b.call(Helper::RingbufReserve);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, out);
    b.jmp_imm(JmpOp::Jset, Reg::R7, DISCARD_BIT as i32, discard);
    b.stx(Size::DW, Reg::R0, 0, Reg::R7);
    b.ld_imm64(Reg::R1, MAGIC);
    b.stx(Size::DW, Reg::R0, 8, Reg::R1);
    b.mov64_reg(Reg::R1, Reg::R0)
        .mov64_imm(Reg::R2, submit_flags);
    b.call(Helper::RingbufSubmit);
    b.ja(out);
    b.bind(discard);
    b.mov64_reg(Reg::R1, Reg::R0).mov64_imm(Reg::R2, 0);
    b.call(Helper::RingbufDiscard);
    b.bind(out);
    b.mov64_imm(Reg::R0, 0).exit();
    let p = b.build().unwrap();
    let bytes = p.to_bytes(&[ring.raw_fd()]).unwrap();
    Program::load(
        ProgType::Kprobe,
        Some(BPF_TRACE_UPROBE_MULTI),
        &bytes,
        "GPL",
        p.kernel_name(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", e.log))
}

struct Setup {
    ring: RingBuf,
    _link: Link,
}

fn setup(size: u32, submit_flags: i32) -> Setup {
    let map = Map::create(MapType::RingBuf, 0, 0, size, 0, "test_ring").unwrap();
    let prog = ring_program(&map, submit_flags);
    let (exe, off) = probe_offset("pytap_sys_test_ring");
    let link = Link::uprobe_multi(
        &prog,
        &exe,
        UprobeSites::new(&[off], &[0], &[0]),
        Some(std::process::id()),
        false,
    )
    .unwrap();
    let ring = RingBuf::new(&map).unwrap();
    drop(map); // the consumer holds its own fd
    Setup { ring, _link: link }
}

fn call(args: impl IntoIterator<Item = u64>) {
    for a in args {
        std::hint::black_box(pytap_sys_test_ring(std::hint::black_box(a)));
    }
}

fn decode(rec: &[u8]) -> (u64, u64) {
    assert_eq!(rec.len(), RECORD);
    (
        u64::from_ne_bytes(rec[..8].try_into().unwrap()),
        u64::from_ne_bytes(rec[8..].try_into().unwrap()),
    )
}

#[test]
fn hundred_thousand_records_in_order() {
    let _g = probe_lock();
    let mut s = setup(4 << 20, 1); // BPF_RB_NO_WAKEUP
    assert_eq!(s.ring.capacity(), 4 << 20);
    assert!(common::is_cloexec(s.ring.raw_fd()));
    const N: u64 = 100_000;
    call(0..N);
    assert_eq!(s.ring.pending_bytes(), N * RECORD_SPACE);
    let mut next = 0u64;
    let n = s.ring.consume(&mut |rec| {
        assert_eq!(decode(rec), (next, MAGIC));
        next += 1;
        true
    });
    assert_eq!(n, N as usize);
    assert_eq!(next, N);
    assert_eq!(s.ring.pending_bytes(), 0);
    assert_eq!(s.ring.consume(&mut |_| panic!("no more records")), 0);
}

#[test]
fn wraps_around_the_end_of_the_ring() {
    let _g = probe_lock();
    // One page of data: 4096 / 24 records per lap, many laps.
    let page = pytap_sys::page_size() as u32;
    let mut s = setup(page, 1);
    let mut next = 0u64;
    for lap in 0..20u64 {
        call(lap * 100..lap * 100 + 100);
        let n = s.ring.consume(&mut |rec| {
            assert_eq!(decode(rec), (next, MAGIC));
            next += 1;
            true
        });
        assert_eq!(n, 100);
    }
    assert_eq!(next, 2000);
    assert_eq!(s.ring.pending_bytes(), 0);
}

#[test]
fn consume_stops_when_asked() {
    let _g = probe_lock();
    let mut s = setup(64 << 10, 1);
    call(0..10);
    let mut got = Vec::new();
    let n = s.ring.consume(&mut |rec| {
        got.push(decode(rec).0);
        got.len() < 3
    });
    assert_eq!(n, 3);
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(s.ring.pending_bytes(), 7 * RECORD_SPACE);
    let n = s.ring.consume(&mut |rec| {
        got.push(decode(rec).0);
        true
    });
    assert_eq!(n, 7);
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(s.ring.pending_bytes(), 0);
}

#[test]
fn discarded_records_are_skipped() {
    let _g = probe_lock();
    let mut s = setup(64 << 10, 1);
    call((0..10).map(|i| if i % 2 == 1 { i | DISCARD_BIT } else { i }));
    // Discarded records still take ring space until consumed.
    assert_eq!(s.ring.pending_bytes(), 10 * RECORD_SPACE);
    let mut got = Vec::new();
    let n = s.ring.consume(&mut |rec| {
        got.push(decode(rec).0);
        true
    });
    assert_eq!(n, 5);
    assert_eq!(got, [0, 2, 4, 6, 8]);
    assert_eq!(s.ring.pending_bytes(), 0);
}

#[test]
fn forced_wakeups_reach_epoll() {
    let _g = probe_lock();
    let mut s = setup(64 << 10, 2); // BPF_RB_FORCE_WAKEUP
    let poller = Poller::new().unwrap();
    assert!(common::is_cloexec(poller.raw_fd()));
    poller.add(s.ring.raw_fd(), 7).unwrap();
    assert_eq!(
        poller.wait(Some(Duration::ZERO)).unwrap(),
        Vec::<u64>::new()
    );
    call([42]);
    assert_eq!(poller.wait(Some(Duration::from_secs(5))).unwrap(), [7]);
    // Level-triggered: still readable until consumed.
    assert_eq!(poller.wait(Some(Duration::ZERO)).unwrap(), [7]);
    assert_eq!(s.ring.consume(&mut |rec| decode(rec) == (42, MAGIC)), 1);
    assert_eq!(
        poller.wait(Some(Duration::ZERO)).unwrap(),
        Vec::<u64>::new()
    );
    poller.remove(s.ring.raw_fd()).unwrap();
    call([43]);
    assert_eq!(
        poller.wait(Some(Duration::from_millis(50))).unwrap(),
        Vec::<u64>::new()
    );
    // Removing twice: ENOENT from the kernel.
    assert_eq!(poller.remove(s.ring.raw_fd()).unwrap_err().errno(), Some(2));
}

#[test]
fn only_ring_buffer_maps_can_be_consumed() {
    let map = Map::create(MapType::Array, 4, 8, 1, 0, "not_a_ring").unwrap();
    let e = RingBuf::new(&map).unwrap_err();
    assert_eq!(e.source.kind(), ErrorKind::InvalidInput);
}
