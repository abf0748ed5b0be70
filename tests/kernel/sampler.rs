//! The base of a stack sampler, end to end: a `perf_event` program built
//! with pytap's builder, attached at 999 Hz to every online CPU
//! (`pytap_sys::perf::CpuSamplers`), reads the sampled task's
//! `thread.fsbase` at the offset the kernel's BTF gives
//! (`pytap_ebpf::btf`) and writes `(tid, tgid, fsbase)` to a ring buffer.
//! Against a Python with two threads spinning, every sample of the target
//! must name one of its threads and carry exactly the thread pointer that
//! thread printed (`threading.get_ident()`), and each spinner must be
//! sampled as often as its CPU time says.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pytap_ebpf::btf::{Btf, VMLINUX_PATH as VMLINUX};
use pytap_ebpf::{AluOp, Helper, JmpOp, MapRef, Program, ProgramBuilder, Reg, Size};
use pytap_sys::bpf::{self, Map, MapType, ProgType};
use pytap_sys::perf::CpuSamplers;
use pytap_sys::ringbuf::RingBuf;

use crate::harness::{ChildGuard, fixture, require_kernel, script, system_python};

const FREQ: u64 = 999;
const RING: MapRef = MapRef(0);
const STATS: MapRef = MapRef(1);
/// A record: tid u32, tgid u32, fsbase u64, the read's result i64, cpu u32,
/// then 4 bytes of padding.
const RECORD: u16 = 32;

/// `task_struct.thread.fsbase` on this kernel, from its BTF.
fn fsbase_offset() -> u32 {
    assert!(
        Path::new(VMLINUX).exists(),
        "prerequisite missing: {VMLINUX} (a kernel built with CONFIG_DEBUG_INFO_BTF=y)"
    );
    let btf = Btf::from_file(VMLINUX).unwrap_or_else(|e| panic!("{e}"));
    btf.member_offset(&["task_struct", "thread", "fsbase"])
        .unwrap_or_else(|e| panic!("{VMLINUX}: {e}"))
}

/// For samples of process `tgid` only: the record above, copied into the
/// ring with `bpf_ringbuf_output`; a record the ring has no room for counts
/// in slot 0 of the per-CPU array `STATS`. Nothing else is written: no hash
/// map is touched from the clock's interrupt.
fn sampler_program(tgid: u32, fsbase_offset: u32) -> Program {
    let mut b = ProgramBuilder::new("fsbase_sampler");
    let rec = b.alloc_stack(RECORD, 8).unwrap();
    let key = b.alloc_stack(4, 4).unwrap();
    let out = b.new_label();
    b.comment("pid_tgid = tgid << 32 | tid: only the target's samples");
    b.call(Helper::GetCurrentPidTgid);
    b.stx(Size::DW, Reg::FP, rec.field(0), Reg::R0);
    b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
    let tgid = i32::try_from(tgid).expect("a pid fits an immediate");
    b.jmp_imm(JmpOp::Jne, Reg::R0, tgid, out);
    b.comment("fsbase = *(u64 *)(current + offset), by bpf_probe_read_kernel");
    b.st_imm(Size::DW, Reg::FP, rec.field(8), 0);
    b.call(Helper::GetCurrentTask);
    b.mov64_reg(Reg::R3, Reg::R0)
        .add64_imm(Reg::R3, i32::try_from(fsbase_offset).expect("offset fits"));
    b.mov64_reg(Reg::R1, Reg::FP)
        .add64_imm(Reg::R1, rec.field(8).into());
    b.mov64_imm(Reg::R2, 8);
    b.call(Helper::ProbeReadKernel);
    b.stx(Size::DW, Reg::FP, rec.field(16), Reg::R0);
    b.call(Helper::GetSmpProcessorId);
    b.stx(Size::W, Reg::FP, rec.field(24), Reg::R0);
    b.st_imm(Size::W, Reg::FP, rec.field(28), 0);
    b.comment("ringbuf_output(ring, &rec, RECORD, 0)");
    b.ld_map_fd(Reg::R1, RING);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, rec.off.into());
    b.mov64_imm(Reg::R3, RECORD.into());
    b.mov64_imm(Reg::R4, 0);
    b.call(Helper::RingbufOutput);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, out);
    b.comment("no room: stats[0] += 1, this CPU's own slot");
    b.st_imm(Size::W, Reg::FP, key.off, 0);
    b.ld_map_fd(Reg::R1, STATS);
    b.mov64_reg(Reg::R2, Reg::FP)
        .add64_imm(Reg::R2, key.off.into());
    b.call(Helper::MapLookupElem);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, out);
    b.mov64_imm(Reg::R1, 1);
    b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    b.bind(out);
    b.mov64_imm(Reg::R0, 0).exit();
    b.build().unwrap()
}

/// One sample as the program wrote it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    tid: u32,
    tgid: u32,
    fsbase: u64,
    read: i64,
    cpu: u32,
}

fn decode(record: &[u8]) -> Sample {
    assert_eq!(record.len(), usize::from(RECORD), "record size");
    let u32_at = |at: usize| u32::from_ne_bytes(record[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_ne_bytes(record[at..at + 8].try_into().unwrap());
    Sample {
        tid: u32_at(0),
        tgid: u32_at(4),
        fsbase: u64_at(8),
        read: u64_at(16) as i64,
        cpu: u32_at(24),
    }
}

/// The target's threads as it printed them: tid → `get_ident()`, the
/// spinners' tids, and its pid.
struct Target {
    idents: BTreeMap<u32, u64>,
    spinners: Vec<u32>,
    pid: u32,
}

fn read_target(child: &mut ChildGuard) -> Target {
    use std::io::BufRead;
    let reader = child.stdout.as_mut().expect("stdout piped");
    let mut target = Target {
        idents: BTreeMap::new(),
        spinners: Vec::new(),
        pid: 0,
    };
    for line in reader.lines() {
        let line = line.expect("the target's stdout");
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[..] {
            ["ready"] => break,
            ["thread", tid, ident] => {
                target.spinners.push(tid.parse().unwrap());
                target
                    .idents
                    .insert(tid.parse().unwrap(), ident.parse().unwrap());
            }
            ["main", tid, ident, pid] => {
                target
                    .idents
                    .insert(tid.parse().unwrap(), ident.parse().unwrap());
                target.pid = pid.parse().unwrap();
            }
            _ => panic!("unexpected line from the target: {line:?}"),
        }
    }
    assert_eq!(target.spinners.len(), 2, "two spinners printed");
    assert!(target.pid > 0, "the target printed its pid");
    target
}

/// The CPU time (ns) thread `tid` of process `pid` has had so far.
fn runtime_ns(pid: u32, tid: u32) -> u64 {
    let path = format!("/proc/{pid}/task/{tid}/schedstat");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split_whitespace().next().unwrap().parse().unwrap()
}

fn dropped(stats: &Map) -> u64 {
    let mut v = vec![0u8; stats.value_buffer_len()];
    assert!(stats.lookup(&0u32.to_ne_bytes(), &mut v).unwrap());
    v.chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .sum()
}

/// Samples `python` running tests/py/spinners.py and checks every sample.
fn sample_spinners(python: &Path, fsbase_offset: u32) {
    let what = python.display();
    let mut child = ChildGuard::spawn(Command::new(python).arg(script("spinners.py")));
    let target = read_target(&mut child);
    let ring = Map::create(MapType::RingBuf, 0, 0, 1 << 20, 0, "t_samples").unwrap();
    let stats = Map::create(MapType::PercpuArray, 4, 8, 1, 0, "t_sample_stats").unwrap();
    let prog = sampler_program(target.pid, fsbase_offset);
    let bytes = prog.to_bytes(&[ring.raw_fd(), stats.raw_fd()]).unwrap();
    let prog = bpf::Program::load(ProgType::PerfEvent, None, &bytes, "GPL", prog.kernel_name())
        .unwrap_or_else(|e| panic!("the sampler program does not load: {e}\n{}", e.log));
    let mut consumer = RingBuf::new(&ring).unwrap();
    let mut samples = Vec::new();
    let mut take = |consumer: &mut RingBuf| {
        consumer.consume(&mut |r| {
            samples.push(decode(r));
            true
        });
    };

    let samplers = CpuSamplers::attach(&prog, FREQ, 0).unwrap();
    let ran = |t: &[u64]| -> Vec<u64> {
        target
            .spinners
            .iter()
            .zip(t)
            .map(|(tid, t0)| runtime_ns(target.pid, *tid) - t0)
            .collect()
    };
    let t0: Vec<u64> = target
        .spinners
        .iter()
        .map(|tid| runtime_ns(target.pid, *tid))
        .collect();
    let started = Instant::now();
    assert_eq!(
        samplers.cpus().collect::<Vec<_>>(),
        pytap_sys::online_cpu_ids().unwrap(),
        "{what}: a sampler on every online CPU"
    );
    // At least a second, and until each spinner has had a quarter of a
    // second of CPU however busy the machine is (20 s at most).
    loop {
        std::thread::sleep(Duration::from_millis(100));
        take(&mut consumer);
        let enough = ran(&t0).iter().all(|ns| *ns >= 250_000_000);
        if (started.elapsed() >= Duration::from_secs(1) && enough)
            || started.elapsed() >= Duration::from_secs(20)
        {
            break;
        }
    }
    let cpu_time = ran(&t0);
    drop(samplers);
    take(&mut consumer);
    let wall = started.elapsed();
    child.say("stop");
    let (code, _) = child.finish();
    assert_eq!(code, 0, "{what}: the target's exit code");

    let mut per_thread: BTreeMap<u32, u64> = BTreeMap::new();
    let mut per_cpu: BTreeMap<u32, u64> = BTreeMap::new();
    for s in &samples {
        assert_eq!(
            s.tgid, target.pid,
            "{what}: a sample of another process: {s:?}"
        );
        let ident = target.idents.get(&s.tid).unwrap_or_else(|| {
            panic!("{what}: a sample of a thread the target did not print: {s:?}")
        });
        assert_eq!(s.read, 0, "{what}: bpf_probe_read_kernel failed: {s:?}");
        assert_eq!(
            s.fsbase, *ident,
            "{what}: thread {}: fsbase {:#x}, get_ident() {ident:#x}",
            s.tid, s.fsbase
        );
        *per_thread.entry(s.tid).or_default() += 1;
        *per_cpu.entry(s.cpu).or_default() += 1;
    }
    println!(
        "{what}: {} samples in {wall:.2?}; per thread {per_thread:?}; per CPU {per_cpu:?}; \
         spinners' CPU time {cpu_time:?} ns",
        samples.len()
    );
    assert_eq!(
        dropped(&stats),
        0,
        "{what}: samples the ring had no room for"
    );
    for (tid, ns) in target.spinners.iter().zip(&cpu_time) {
        let got = per_thread.get(tid).copied().unwrap_or(0);
        assert!(
            *ns >= 250_000_000,
            "{what}: spinner {tid} got {ns} ns of CPU in {wall:?}"
        );
        assert!(got >= 100, "{what}: spinner {tid}: {got} samples");
        // One sample per 1/999 s of the thread's CPU time; the reads of
        // its CPU time and the samples are not taken at one instant.
        let expected = *ns as f64 * 1e-9 * FREQ as f64;
        assert!(
            got as f64 >= 0.5 * expected && got as f64 <= 1.2 * expected + 20.0,
            "{what}: spinner {tid}: {got} samples for {ns} ns of CPU at {FREQ} Hz"
        );
    }
}

#[test]
fn samples_carry_the_thread_pointer_each_python_thread_reports() {
    require_kernel();
    let offset = fsbase_offset();
    println!("task_struct.thread.fsbase: byte {offset}");
    sample_spinners(&system_python(), offset);
    // Another glibc (Debian forky's), another CPython.
    sample_spinners(&fixture("3.15").binary, offset);
}
