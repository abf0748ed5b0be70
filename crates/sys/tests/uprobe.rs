//! uprobes on this test binary's own functions, through all three attach
//! paths, with exact counts, cookies, return probes and detach on drop.

mod common;

use std::io::ErrorKind;
use std::path::Path;

use common::{count, counters, counting_program, probe_lock, probe_offset};
use pytap_sys::bpf::{BPF_TRACE_UPROBE_MULTI, Link, UprobeSites};
use pytap_sys::perf::{PerfEvent, uprobe_pmu_type};

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pytap_sys_test_probe(x: u64) -> u64 {
    std::hint::black_box(x) + 1
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pytap_sys_test_probe2(x: u64) -> u64 {
    std::hint::black_box(x) + 2
}

fn call1(n: u64) {
    for i in 0..n {
        std::hint::black_box(pytap_sys_test_probe(std::hint::black_box(i)));
    }
}

fn call2(n: u64) {
    for i in 0..n {
        std::hint::black_box(pytap_sys_test_probe2(std::hint::black_box(i)));
    }
}

fn our_pid() -> Option<u32> {
    Some(std::process::id())
}

const N: u64 = 10_000;

#[test]
fn uprobe_multi_link_counts_exactly_and_detaches_on_drop() {
    let _g = probe_lock();
    let (exe, off) = probe_offset("pytap_sys_test_probe");
    let counts = counters();
    let prog = counting_program(&counts, Some(BPF_TRACE_UPROBE_MULTI));
    let link = Link::uprobe_multi(
        &prog,
        &exe,
        UprobeSites::new(&[off], &[0], &[0]),
        our_pid(),
        false,
    )
    .unwrap();
    assert!(common::is_cloexec(link.raw_fd()));
    drop(prog); // the link keeps the program alive
    call1(N);
    assert_eq!(count(&counts, 0), N);
    drop(link);
    call1(N);
    assert_eq!(
        count(&counts, 0),
        N,
        "still counting after the link was dropped"
    );
}

#[test]
fn uprobe_multi_cookies_route_sites_and_system_wide_works() {
    let _g = probe_lock();
    let (exe, off1) = probe_offset("pytap_sys_test_probe");
    let (_, off2) = probe_offset("pytap_sys_test_probe2");
    let counts = counters();
    let prog = counting_program(&counts, Some(BPF_TRACE_UPROBE_MULTI));
    // No pid filter, no ref_ctr array (empty slice = none).
    let link = Link::uprobe_multi(
        &prog,
        &exe,
        UprobeSites::new(&[off1, off2], &[], &[1, 2]),
        None,
        false,
    )
    .unwrap();
    call1(N);
    call2(2 * N + 1);
    assert_eq!(count(&counts, 0), 0);
    assert_eq!(count(&counts, 1), N);
    assert_eq!(count(&counts, 2), 2 * N + 1);
    drop(link);
}

#[test]
fn uprobe_multi_return_probe() {
    let _g = probe_lock();
    let (exe, off) = probe_offset("pytap_sys_test_probe2");
    let counts = counters();
    let prog = counting_program(&counts, Some(BPF_TRACE_UPROBE_MULTI));
    let _entry = Link::uprobe_multi(
        &prog,
        &exe,
        UprobeSites::new(&[off], &[0], &[4]),
        our_pid(),
        false,
    )
    .unwrap();
    let _ret = Link::uprobe_multi(
        &prog,
        &exe,
        UprobeSites::new(&[off], &[0], &[5]),
        our_pid(),
        true,
    )
    .unwrap();
    call2(N);
    assert_eq!(count(&counts, 4), N);
    assert_eq!(count(&counts, 5), N);
}

#[test]
fn perf_event_link_counts_exactly_with_its_cookie() {
    let _g = probe_lock();
    let (exe, off) = probe_offset("pytap_sys_test_probe");
    let counts = counters();
    let prog = counting_program(&counts, None);
    let event = PerfEvent::uprobe(&exe, off, 0, our_pid(), false).unwrap();
    assert!(common::is_cloexec(event.raw_fd()));
    let link = Link::perf_event(&prog, &event, 3).unwrap();
    drop(event); // the link holds the event
    drop(prog);
    call1(N);
    assert_eq!(count(&counts, 3), N);
    assert_eq!(count(&counts, 0), 0);
    drop(link);
    call1(N);
    assert_eq!(
        count(&counts, 3),
        N,
        "still counting after the link was dropped"
    );
}

#[test]
fn perf_event_ioctl_system_wide_counts_exactly() {
    let _g = probe_lock();
    let (exe, off) = probe_offset("pytap_sys_test_probe");
    let counts = counters();
    let prog = counting_program(&counts, None);
    // pid None: every process, opened on CPU 0, fires on every CPU.
    let event = PerfEvent::uprobe(&exe, off, 0, None, false).unwrap();
    event.set_bpf(&prog).unwrap();
    event.enable().unwrap();
    drop(prog);
    // Calls from another thread, wherever the scheduler puts it.
    std::thread::spawn(|| call1(N)).join().unwrap();
    call1(N);
    assert_eq!(count(&counts, 0), 2 * N);
    drop(event);
    call1(N);
    assert_eq!(
        count(&counts, 0),
        2 * N,
        "still counting after the event was closed"
    );
}

#[test]
fn perf_return_probe() {
    let _g = probe_lock();
    let (exe, off) = probe_offset("pytap_sys_test_probe2");
    let counts = counters();
    let prog = counting_program(&counts, None);
    let event = PerfEvent::uprobe(&exe, off, 0, our_pid(), true).unwrap();
    let _link = Link::perf_event(&prog, &event, 6).unwrap();
    call2(N);
    assert_eq!(count(&counts, 6), N);
}

#[test]
fn attach_errors() {
    let _g = probe_lock();
    let (exe, off) = probe_offset("pytap_sys_test_probe");
    let counts = counters();
    let multi = counting_program(&counts, Some(BPF_TRACE_UPROBE_MULTI));
    let plain = counting_program(&counts, None);

    // ref_ctr_offset is 32 bits in the perf config.
    let e = PerfEvent::uprobe(&exe, off, 1 << 32, None, false).unwrap_err();
    assert_eq!(e.source.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.call, "perf_event_open(uprobe)");

    // Mismatched slice lengths, no offsets, pid 0: refused before the kernel.
    for r in [
        Link::uprobe_multi(
            &multi,
            &exe,
            UprobeSites::new(&[off, off], &[0], &[]),
            None,
            false,
        ),
        Link::uprobe_multi(
            &multi,
            &exe,
            UprobeSites::new(&[off], &[], &[1, 2]),
            None,
            false,
        ),
        Link::uprobe_multi(&multi, &exe, UprobeSites::new(&[], &[], &[]), None, false),
        Link::uprobe_multi(
            &multi,
            &exe,
            UprobeSites::new(&[off], &[], &[]),
            Some(0),
            false,
        ),
    ] {
        let e = r.unwrap_err();
        assert_eq!(e.source.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.call, "BPF_LINK_CREATE(uprobe_multi)");
    }

    // Kernel answers, recorded for the engine.
    let errno = |r: Result<Link, pytap_sys::SysError>| r.unwrap_err().errno();
    // A program loaded without expected_attach_type 48: EINVAL.
    assert_eq!(
        errno(Link::uprobe_multi(
            &plain,
            &exe,
            UprobeSites::new(&[off], &[], &[]),
            None,
            false
        )),
        Some(22)
    );
    // Missing file: ENOENT; not a regular file: EBADF.
    let missing = Path::new("/nonexistent/pytap");
    assert_eq!(
        errno(Link::uprobe_multi(
            &multi,
            missing,
            UprobeSites::new(&[off], &[], &[]),
            None,
            false
        )),
        Some(2)
    );
    assert_eq!(
        errno(Link::uprobe_multi(
            &multi,
            Path::new("/"),
            UprobeSites::new(&[off], &[], &[]),
            None,
            false
        )),
        Some(9)
    );
    // A pid that does not exist: ESRCH.
    assert_eq!(
        errno(Link::uprobe_multi(
            &multi,
            &exe,
            UprobeSites::new(&[off], &[], &[]),
            Some(0x3fff_fff0),
            false
        )),
        Some(3)
    );

    // A uprobe_multi program cannot be linked to a perf event: EINVAL.
    let event = PerfEvent::uprobe(&exe, off, 0, our_pid(), false).unwrap();
    assert_eq!(
        Link::perf_event(&multi, &event, 0).unwrap_err().errno(),
        Some(22)
    );
    // The ioctl would accept it, but the program's cookie helper then returns
    // garbage (checked on 6.18): refused up front.
    let e = event.set_bpf(&multi).unwrap_err();
    assert_eq!(e.source.kind(), ErrorKind::InvalidInput);
    // perf_event_open on a missing file: ENOENT.
    let e = PerfEvent::uprobe(missing, 0, 0, None, false).unwrap_err();
    assert_eq!(e.errno(), Some(2));
    assert!(uprobe_pmu_type().unwrap() > 0);
}
