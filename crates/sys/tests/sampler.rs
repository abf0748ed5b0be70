//! Sampling clocks running perf_event programs: one CPU clock per online
//! CPU sampling at the asked rate on each of them, a thread's task clock
//! sampling that thread and nothing else, in proportion to its CPU time,
//! and what is refused.

mod common;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{count, counters, is_cloexec};
use pytap_ebpf::{Helper, JmpOp, MapRef, ProgramBuilder, Reg, Size};
use pytap_sys::bpf::{Map, MapType, ProgType, Program};
use pytap_sys::perf::{CpuSamplers, PerfEvent, Sampler, max_sample_rate};

const FREQ: u64 = 999;

fn load(b: ProgramBuilder, maps: &[&Map]) -> Program {
    let p = b.build().unwrap();
    let fds: Vec<i32> = maps.iter().map(|m| m.raw_fd()).collect();
    Program::load(
        ProgType::PerfEvent,
        None,
        &p.to_bytes(&fds).unwrap(),
        "GPL",
        p.kernel_name(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", e.log))
}

/// `map[key] += 1`, with the key at `key_off` on the stack.
fn increment(b: &mut ProgramBuilder, key_off: i16) {
    let done = b.new_label();
    b.ld_map_fd(Reg::R1, MapRef(0));
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key_off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
    b.mov64_imm(Reg::R1, 1);
    b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    b.bind(done);
    b.mov64_imm(Reg::R0, 0).exit();
}

/// Slot 0 of a per-CPU array, +1 on the sampled CPU.
fn per_cpu_counting_program(counts: &Map) -> Program {
    let mut b = ProgramBuilder::new("test_cpu_samples");
    let key = b.alloc_stack(4, 4).unwrap();
    b.st_imm(Size::W, Reg::FP, key.off, 0);
    increment(&mut b, key.off);
    load(b, &[counts])
}

/// `counts[0] += 1` for samples of thread `tid`, `counts[1]` for others.
fn thread_counting_program(counts: &Map, tid: u32) -> Program {
    let mut b = ProgramBuilder::new("test_thread_samples");
    let key = b.alloc_stack(4, 4).unwrap();
    let other = b.new_label();
    let count = b.new_label();
    b.call(Helper::GetCurrentPidTgid);
    b.st_imm(Size::W, Reg::FP, key.off, 0);
    b.jmp32_imm(JmpOp::Jne, Reg::R0, tid as i32, other);
    b.ja(count);
    b.bind(other);
    b.st_imm(Size::W, Reg::FP, key.off, 1);
    b.bind(count);
    increment(&mut b, key.off);
    load(b, &[counts])
}

/// Each CPU's slot 0 of a per-CPU array of u64.
fn per_cpu_counts(map: &Map) -> Vec<u64> {
    let mut v = vec![0u8; map.value_buffer_len()];
    assert!(map.lookup(&0u32.to_ne_bytes(), &mut v).unwrap());
    v.chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

/// The CPU time (ns) thread `tid` of this process has had so far.
fn runtime_ns(tid: u32) -> u64 {
    let path = format!("/proc/self/task/{tid}/schedstat");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn cpu_samplers_sample_every_online_cpu_at_the_rate() {
    let counts = Map::create(MapType::PercpuArray, 4, 8, 1, 0, "t_cpu_samples").unwrap();
    let prog = per_cpu_counting_program(&counts);
    let online = pytap_sys::online_cpu_ids().unwrap();
    let samplers = CpuSamplers::attach(&prog, FREQ, 7).unwrap();
    let started = Instant::now();
    drop(prog); // the links hold it
    assert_eq!(samplers.cpus().collect::<Vec<_>>(), online);
    assert!(samplers.skipped().is_empty(), "{:?}", samplers.skipped());
    for (_, s) in samplers.samplers() {
        assert!(is_cloexec(s.event().raw_fd()));
        assert!(is_cloexec(s.link().raw_fd()));
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = per_cpu_counts(&counts);
    let wall = started.elapsed().as_secs_f64();
    // The clock of a CPU runs whatever the CPU does, idle included: each
    // online CPU gets about FREQ samples a second of wall time.
    let expected = wall * FREQ as f64;
    for cpu in &online {
        let got = before[*cpu as usize] as f64;
        println!("cpu {cpu}: {got} samples in {wall:.3} s (expected {expected:.0})");
        assert!(
            got >= 0.5 * expected && got <= 1.2 * expected,
            "cpu {cpu}: {got} samples in {wall:.3} s at {FREQ} Hz"
        );
    }
    // Disabled, a sampler stops; dropped, all of them stop.
    for (_, s) in samplers.samplers() {
        s.event().disable().unwrap();
    }
    let disabled = per_cpu_counts(&counts);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        per_cpu_counts(&counts),
        disabled,
        "disabled samplers sampled"
    );
    for (_, s) in samplers.samplers() {
        s.event().enable().unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(per_cpu_counts(&counts).iter().sum::<u64>() > disabled.iter().sum::<u64>());
    drop(samplers);
    let after = per_cpu_counts(&counts);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(per_cpu_counts(&counts), after, "sampling after the drop");
}

#[test]
fn a_task_clock_samples_its_thread_in_proportion_to_its_cpu_time() {
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        scope.spawn(move || {
            let me = std::fs::read_link("/proc/thread-self").unwrap();
            let tid: u32 = me.file_name().unwrap().to_str().unwrap().parse().unwrap();
            tx.send(tid).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        });
        let tid = rx.recv().unwrap();
        let counts = counters();
        let prog = thread_counting_program(&counts, tid);
        let event = PerfEvent::task_clock_sampler(tid, FREQ).unwrap();
        assert!(is_cloexec(event.raw_fd()));
        let sampler = Sampler::attach(&prog, event, 0).unwrap();
        let t0 = runtime_ns(tid);
        // Until the spinner has had 200 ms of CPU, however busy the machine.
        let deadline = Instant::now() + Duration::from_secs(20);
        while runtime_ns(tid) - t0 < 200_000_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (samples, others) = (count(&counts, 0), count(&counts, 1));
        let ran = runtime_ns(tid) - t0;
        drop(sampler);
        stop.store(true, Ordering::Relaxed);
        let expected = ran as f64 * 1e-9 * FREQ as f64;
        println!("thread {tid}: {samples} samples for {ran} ns of CPU (expected {expected:.0})");
        assert!(
            ran >= 200_000_000,
            "the spinner got {ran} ns of CPU in 20 s"
        );
        assert_eq!(others, 0, "a thread's task clock sampled another thread");
        assert!(
            samples as f64 >= 0.5 * expected && samples as f64 <= 1.2 * expected + 2.0,
            "{samples} samples for {ran} ns of CPU at {FREQ} Hz"
        );
    });
}

#[test]
fn sampler_requests_the_kernel_cannot_serve_are_refused() {
    let invalid = |r: Result<PerfEvent, pytap_sys::SysError>| {
        let e = r.unwrap_err();
        assert_eq!(e.source.kind(), ErrorKind::InvalidInput, "{e}");
        e
    };
    let e = invalid(PerfEvent::cpu_clock_sampler(0, 0));
    assert_eq!(e.call, "perf_event_open(cpu-clock)");
    let too_fast = max_sample_rate().unwrap() + 1;
    let e = invalid(PerfEvent::cpu_clock_sampler(0, too_fast));
    assert!(e.to_string().contains("perf_event_max_sample_rate"), "{e}");
    invalid(PerfEvent::cpu_clock_sampler(u32::MAX, FREQ));
    let e = invalid(PerfEvent::task_clock_sampler(0, FREQ));
    assert_eq!(e.call, "perf_event_open(task-clock)");
    invalid(PerfEvent::task_clock_sampler(u32::MAX, FREQ));
    invalid(PerfEvent::task_clock_sampler(1, 0));
    // A CPU that does not exist.
    let e = PerfEvent::cpu_clock_sampler(100_000, FREQ).unwrap_err();
    assert!(e.errno().is_some(), "{e}");

    // Only perf_event programs run on sampling events.
    let mut b = ProgramBuilder::new("test_kprobe");
    b.mov64_imm(Reg::R0, 0).exit();
    let p = b.build().unwrap();
    let kprobe = Program::load(
        ProgType::Kprobe,
        None,
        &p.to_bytes(&[]).unwrap(),
        "GPL",
        p.kernel_name(),
    )
    .unwrap();
    let event = PerfEvent::cpu_clock_sampler(0, FREQ).unwrap();
    let e = Sampler::attach(&kprobe, event, 0).unwrap_err();
    assert_eq!(e.errno(), Some(22), "EINVAL expected: {e}");
}
