//! Sampling clocks: software perf events that fire at a fixed frequency and
//! run a [`ProgType::PerfEvent`](crate::bpf::ProgType::PerfEvent) program
//! at each sample, the base of a stack sampler.
//!
//! - [`PerfEvent::cpu_clock_sampler`]: `PERF_COUNT_SW_CPU_CLOCK` on one CPU,
//!   all tasks (pid -1). One per online CPU samples the whole machine:
//!   [`CpuSamplers::attach`] does that.
//! - [`PerfEvent::task_clock_sampler`]: `PERF_COUNT_SW_TASK_CLOCK` of one
//!   thread (pid = tid, cpu -1), wherever it runs. The clock only advances
//!   while the thread is on a CPU, so this samples its CPU time, not wall
//!   time; a later per-thread or wall mode can use it for chosen threads
//!   (threads the target creates later are not followed: no `inherit`).
//!
//! Both are opened disabled; [`Sampler::attach`] links the program and
//! then enables the event, so no sample is taken without the program. The
//! public items carry the rest (context rules on [`Sampler`], an example on
//! [`CpuSamplers`]); this module is private.

use super::{ATTR_DISABLED, ATTR_FREQ, PerfEvent, PerfEventAttr};
use crate::SysError;
use crate::bpf::{Link, Program};
use crate::sys;

/// `PERF_TYPE_SOFTWARE`.
const PERF_TYPE_SOFTWARE: u32 = 1;
/// `PERF_COUNT_SW_CPU_CLOCK`: a CPU's clock, whatever runs on it.
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
/// `PERF_COUNT_SW_TASK_CLOCK`: the clock of one task, running only with it.
const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;

/// Where the kernel keeps the highest sampling frequency it allows.
const MAX_SAMPLE_RATE_PATH: &str = "/proc/sys/kernel/perf_event_max_sample_rate";

/// `kernel.perf_event_max_sample_rate`: the highest `freq_hz` a sampler may
/// ask for (100000 by default; the kernel lowers it by itself when samples
/// take too long, logging "perf: interrupt took too long"). Read afresh.
pub fn max_sample_rate() -> Result<u64, SysError> {
    const CALL: &str = "read(/proc/sys/kernel/perf_event_max_sample_rate)";
    let text = std::fs::read_to_string(MAX_SAMPLE_RATE_PATH).map_err(|e| SysError::new(CALL, e))?;
    text.trim().parse().map_err(|_| {
        SysError::new(
            CALL,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{text:?}")),
        )
    })
}

/// `freq_hz` must be at least 1 and at most [`max_sample_rate`] (when that
/// can be read; otherwise the kernel judges it).
fn check_freq(call: &'static str, freq_hz: u64) -> Result<(), SysError> {
    if freq_hz == 0 {
        return Err(SysError::invalid_input(call, "sampling frequency 0 Hz"));
    }
    if let Ok(max) = max_sample_rate()
        && freq_hz > max
    {
        return Err(SysError::invalid_input(
            call,
            format!("{freq_hz} Hz is above kernel.perf_event_max_sample_rate ({max})"),
        ));
    }
    Ok(())
}

/// A disabled software clock sampling `freq_hz` times a second.
fn software_clock(
    call: &'static str,
    config: u64,
    pid: i32,
    cpu: i32,
    freq_hz: u64,
) -> Result<PerfEvent, SysError> {
    check_freq(call, freq_hz)?;
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config,
        sample_period: freq_hz,
        flags: ATTR_DISABLED | ATTR_FREQ,
        ..PerfEventAttr::default()
    };
    // SAFETY: this attr carries no pointers (a software event reads none of
    // config1/config2 as one).
    let fd =
        unsafe { sys::perf_event_open(&attr, pid, cpu) }.map_err(|e| SysError::new(call, e))?;
    Ok(PerfEvent { fd })
}

impl PerfEvent {
    /// `perf_event_open` of `PERF_COUNT_SW_CPU_CLOCK` on `cpu` for every task
    /// (pid -1), sampling `freq_hz` times a second (`freq` mode; the kernel
    /// turns it into a fixed period of `1e9 / freq_hz` ns for this clock),
    /// opened disabled and close-on-exec. An offline `cpu` is `ENODEV`.
    pub fn cpu_clock_sampler(cpu: u32, freq_hz: u64) -> Result<PerfEvent, SysError> {
        const CALL: &str = "perf_event_open(cpu-clock)";
        let cpu = i32::try_from(cpu)
            .map_err(|_| SysError::invalid_input(CALL, format!("bad cpu {cpu}")))?;
        software_clock(CALL, PERF_COUNT_SW_CPU_CLOCK, -1, cpu, freq_hz)
    }

    /// `perf_event_open` of `PERF_COUNT_SW_TASK_CLOCK` for thread `tid` (an
    /// id of the caller's pid namespace) on any CPU (cpu -1): samples
    /// `freq_hz` times per second of the thread's CPU time. Opened disabled
    /// and close-on-exec; the event ends with the thread. Threads the
    /// thread creates afterwards are not sampled.
    pub fn task_clock_sampler(tid: u32, freq_hz: u64) -> Result<PerfEvent, SysError> {
        const CALL: &str = "perf_event_open(task-clock)";
        let tid = match i32::try_from(tid) {
            Ok(t) if t > 0 => t,
            _ => return Err(SysError::invalid_input(CALL, format!("bad tid {tid}"))),
        };
        software_clock(CALL, PERF_COUNT_SW_TASK_CLOCK, tid, -1, freq_hz)
    }
}

/// A sampling event running a program: the event and the `BPF_PERF_EVENT`
/// link between them (`BPF_LINK_CREATE`, Linux 5.15+). Dropping it stops
/// the samples and detaches the program.
///
/// The program runs in the interrupt of the clock's hrtimer (hard-IRQ
/// context; a hardware PMU's overflow would be an NMI) on the sampled CPU,
/// with the interrupted task as `current`: `bpf_get_current_pid_tgid` and
/// `bpf_get_current_task` name the sampled thread (ids of the initial pid
/// namespace). It may read with `bpf_probe_read_*`, write per-CPU arrays
/// and the ring buffer, but must not update shared hash maps, whose locks
/// can deadlock against the code it interrupted. An idle CPU is sampled too
/// (as its idle task, tgid 0).
#[derive(Debug)]
pub struct Sampler {
    event: PerfEvent,
    link: Link,
}

impl Sampler {
    /// Links `prog` (loaded as
    /// [`ProgType::PerfEvent`](crate::bpf::ProgType::PerfEvent), with no
    /// expected attach type) to `event` with `cookie` (what
    /// `bpf_get_attach_cookie` returns in it), then enables the event. A
    /// program of another type is refused by the kernel (`EINVAL`).
    pub fn attach(prog: &Program, event: PerfEvent, cookie: u64) -> Result<Sampler, SysError> {
        let link = Link::perf_event(prog, &event, cookie)?;
        event.enable()?;
        Ok(Sampler { event, link })
    }

    /// The sampling event, e.g. to [`disable`](PerfEvent::disable) it for a
    /// while.
    pub fn event(&self) -> &PerfEvent {
        &self.event
    }

    /// The link that holds the program on the event.
    pub fn link(&self) -> &Link {
        &self.link
    }
}

/// One CPU-clock [`Sampler`] per online CPU, all running one program: the
/// whole machine sampled at one frequency. CPUs that come online later
/// are not covered (hotplug is not followed).
///
/// ```no_run
/// use pytap_sys::bpf::Program;
/// use pytap_sys::perf::CpuSamplers;
///
/// /// `prog` was loaded as `ProgType::PerfEvent`, e.g. to write the sampled
/// /// thread's stack to a ring buffer.
/// fn sample_everything(prog: &Program) -> Result<CpuSamplers, pytap_sys::SysError> {
///     let samplers = CpuSamplers::attach(prog, 99, 0)?;
///     let cpus: Vec<u32> = samplers.cpus().collect();
///     println!("sampling CPUs {cpus:?} at 99 Hz");
///     // Consume the ring buffer; dropping `samplers` stops sampling.
///     Ok(samplers)
/// }
/// ```
#[derive(Debug)]
pub struct CpuSamplers {
    samplers: Vec<(u32, Sampler)>,
    skipped: Vec<u32>,
}

impl CpuSamplers {
    /// Opens [`PerfEvent::cpu_clock_sampler`] at `freq_hz` on every CPU of
    /// [`online_cpu_ids`](crate::online_cpu_ids) and attaches `prog` to each
    /// with `cookie` ([`Sampler::attach`]). A CPU that went offline between
    /// the listing and its open (`ENODEV`) is skipped and listed in
    /// [`skipped`](CpuSamplers::skipped); any other failure undoes
    /// everything and is returned, as is finding no CPU at all.
    pub fn attach(prog: &Program, freq_hz: u64, cookie: u64) -> Result<CpuSamplers, SysError> {
        let mut samplers = Vec::new();
        let mut skipped = Vec::new();
        for cpu in crate::online_cpu_ids()? {
            match PerfEvent::cpu_clock_sampler(cpu, freq_hz) {
                Ok(event) => samplers.push((cpu, Sampler::attach(prog, event, cookie)?)),
                Err(e) if e.errno() == Some(libc::ENODEV) => skipped.push(cpu),
                Err(e) => return Err(e),
            }
        }
        if samplers.is_empty() {
            return Err(SysError::new(
                "perf_event_open(cpu-clock)",
                std::io::Error::from_raw_os_error(libc::ENODEV),
            ));
        }
        Ok(CpuSamplers { samplers, skipped })
    }

    /// The CPUs being sampled, ascending.
    pub fn cpus(&self) -> impl Iterator<Item = u32> + '_ {
        self.samplers.iter().map(|(cpu, _)| *cpu)
    }

    /// CPUs listed online that were gone by the time their event was opened.
    pub fn skipped(&self) -> &[u32] {
        &self.skipped
    }

    /// The sampler of each CPU.
    pub fn samplers(&self) -> impl Iterator<Item = (u32, &Sampler)> + '_ {
        self.samplers.iter().map(|(cpu, s)| (*cpu, s))
    }
}
