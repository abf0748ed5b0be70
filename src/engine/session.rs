//! A loaded and attached [`Plan`]: maps, programs, links, the ring buffer.
//!
//! Everything is an fd owned here. Dropping the session (or pytap dying,
//! even by SIGKILL) closes them, and the kernel then removes every uprobe
//! and lowers every semaphore it raised: nothing is written to tracefs and
//! nothing is pinned, so nothing can outlive pytap.
//!
//! Attaching prefers one `BPF_LINK_CREATE(uprobe_multi)` link per module
//! (all its sites, a cookie each, optional pid filter; Linux 6.6+) and falls
//! back to one `perf_event_open` uprobe plus a perf link per site.

use std::io;
use std::path::Path;

use pytap_sys::bpf::{self, Link, Map, MapType, ProgType, Program as LoadedProgram};
use pytap_sys::cpuring::CpuRings;
use pytap_sys::perf::PerfEvent;
use pytap_sys::ringbuf::RingBuf;
use pytap_sys::{LoadError, SysError};

use super::abi;
use super::codegen::task::{self, TRACED_MAP, TaskMaps, TaskPoint};
use super::codegen::{MapKind, inplace};
use super::plan::{AttachTarget, Plan, PlannedSite};
use super::streams::{self, KernelStreams};
use super::tasks::TaskNames;
use crate::cpython::Marker;

/// How the uprobes were attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// One uprobe_multi link per module (and pid).
    UprobeMulti,
    /// One perf_event uprobe and perf link per site (and pid).
    PerfEvent,
}

/// Errors loading or attaching, with what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Missing privileges.
    #[error("{what} needs root, or the CAP_BPF and CAP_PERFMON capabilities: {source}")]
    Privilege {
        /// What was being done.
        what: &'static str,
        /// The syscall error.
        source: SysError,
    },
    /// A map could not be created.
    #[error("creating BPF map {name}: {source}")]
    Map {
        /// Map name.
        name: String,
        /// Why.
        source: SysError,
    },
    /// The verifier rejected a program.
    #[error(
        "the kernel rejected BPF program {name}: {source}; verifier log (last lines):\n{log_tail}\nrun with --dump-bpf to see the program"
    )]
    Load {
        /// Program name.
        name: String,
        /// errno.
        source: io::Error,
        /// The end of the verifier log.
        log_tail: String,
    },
    /// A uprobe could not be attached.
    #[error("attaching to {path}: {source}")]
    Attach {
        /// The file.
        path: String,
        /// Why.
        source: SysError,
    },
    /// A relocation referred to a missing map (a bug).
    #[error("internal error relocating program {0}")]
    Reloc(String),
    /// The task programs that keep names exact could not be attached.
    #[error(
        "cannot attach to the kernel's {tracepoint} tracepoint ({reason}); pytap needs it to send function names once and keep them exact"
    )]
    TaskPrograms {
        /// The tracepoint.
        tracepoint: &'static str,
        /// Why.
        reason: String,
    },
    /// No target could be attached (each one's reason is in the notes).
    #[error("no traced module could be attached")]
    NothingAttached,
    /// A module added while running could not be planned.
    #[error(transparent)]
    Plan(#[from] super::plan::PlanError),
}

/// The probes of one module for one process (or every process).
#[derive(Debug)]
struct Attachment {
    target: usize,
    pid: Option<u32>,
    // Dropping them detaches: the kernel removes the uprobes and lowers
    // the semaphores they raised.
    _links: Vec<Link>,
    _perf_events: Vec<PerfEvent>,
}

/// The live session.
#[derive(Debug)]
pub struct Session {
    /// The plan it was made from (sites, modules, notes); it grows when a
    /// traced process runs a module the plan did not have.
    pub plan: Plan,
    /// How the probes were attached.
    pub mode: AttachMode,
    /// Maps, in `MapRef` order.
    pub maps: Vec<Map>,
    // In a RefCell so the run loop can consume records while handing the
    // consumer a shared reference to the session.
    streams: std::cell::RefCell<KernelStreams>,
    counters: usize,
    traced: Option<usize>,
    programs: Vec<LoadedProgram>,
    /// The parts of split bodies ([`Plan::parts`]), in the program array.
    parts: Vec<LoadedProgram>,
    attachments: Vec<Attachment>,
    task_links: Vec<Link>,
    /// Links of processes that exited or executed another program: inert,
    /// waiting to be closed in the background.
    retired: Vec<std::os::fd::OwnedFd>,
    /// The traced threads' names as of the events being handled.
    pub tasks: std::cell::RefCell<TaskNames>,
}

fn privilege_or(
    what: &'static str,
    source: SysError,
    other: impl FnOnce(SysError) -> SessionError,
) -> SessionError {
    match source.errno() {
        // EPERM and EACCES.
        Some(1 | 13) => SessionError::Privilege { what, source },
        _ => other(source),
    }
}

impl Session {
    /// Creates the maps, loads the programs and attaches every site.
    /// `force_perf_event` skips uprobe_multi (to test the fallback, or for
    /// kernels older than 6.6, where it is chosen automatically). With
    /// several targets, one that cannot be attached gets a note in the
    /// plan and the others go on; the session fails only when none could.
    pub fn start(mut plan: Plan, force_perf_event: bool) -> Result<Session, SessionError> {
        let mode = if !force_perf_event && bpf::uprobe_multi_supported() {
            AttachMode::UprobeMulti
        } else {
            AttachMode::PerfEvent
        };
        let maps = plan
            .maps
            .specs()
            .iter()
            .map(|spec| {
                let (map_type, flags) = match spec.kind {
                    MapKind::Array => (MapType::Array, 0),
                    MapKind::PercpuArray => (MapType::PercpuArray, 0),
                    MapKind::Hash => (MapType::Hash, 0),
                    MapKind::HashNoPrealloc => (MapType::Hash, bpf::BPF_F_NO_PREALLOC),
                    MapKind::PercpuHash => (MapType::PercpuHash, 0),
                    MapKind::PercpuHashNoPrealloc => (MapType::PercpuHash, bpf::BPF_F_NO_PREALLOC),
                    MapKind::LruHash => (MapType::LruHash, 0),
                    MapKind::RingBuf => (MapType::RingBuf, 0),
                    MapKind::MmapArray => (MapType::Array, bpf::BPF_F_MMAPABLE),
                    MapKind::ProgArray => (MapType::ProgArray, 0),
                };
                Map::create(
                    map_type,
                    spec.key_size,
                    spec.value_size,
                    spec.max_entries,
                    flags,
                    &spec.name,
                )
                .map_err(|e| {
                    privilege_or("creating BPF maps", e, |source| SessionError::Map {
                        name: spec.name.clone(),
                        source,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let position = |name: &str| plan.maps.specs().iter().position(|s| s.name == name);
        let events_map = plan
            .maps
            .specs()
            .iter()
            .position(|s| s.kind == MapKind::RingBuf)
            .expect("every plan has a ring buffer");
        let counters = position(COUNTERS_MAP).expect("every plan has counters");
        let traced = position(TRACED_MAP);
        let ring = RingBuf::new(&maps[events_map]).map_err(|source| SessionError::Map {
            name: "events".into(),
            source,
        })?;
        let rings = match position(inplace::RINGS_MAP) {
            Some(index) => {
                let map = &maps[index];
                let size = (map.value_size() as usize).saturating_sub(abi::ring::region_bytes(0));
                let rings = CpuRings::new(map, streams::ring_layout(), size).map_err(|source| {
                    SessionError::Map {
                        name: inplace::RINGS_MAP.into(),
                        source,
                    }
                })?;
                Some(rings)
            }
            None => None,
        };
        let mut parts = Vec::new();
        load_parts(&plan, &maps, mode, 0, &mut parts)?;
        let programs = (0..plan.programs.len())
            .map(|index| load_program(&plan, &maps, mode, index))
            .collect::<Result<Vec<_>, _>>()?;
        // The task programs first: a process's exec or exit must not slip
        // between its first events and them (names sent once rely on it).
        let task_links = match task::maps_of(&plan.maps) {
            Some(refs) => attach_task_programs(&maps, refs)?,
            None => Vec::new(),
        };
        let several = plan.targets.len() > 1;
        let mut attachments = Vec::new();
        for index in 0..plan.targets.len() {
            let pids: Vec<Option<u32>> = if plan.targets[index].pids.is_empty() {
                vec![None]
            } else {
                plan.targets[index].pids.iter().copied().map(Some).collect()
            };
            for pid in pids {
                match attach_target(&plan, &programs, mode, index, pid) {
                    Ok(a) => attachments.push(a),
                    Err(e @ SessionError::Privilege { .. }) => return Err(e),
                    Err(e) if several => plan.notes.push(format!("not traced: {e}")),
                    Err(e) => return Err(e),
                }
            }
        }
        // A plan whose function events all come from inside the targets
        // (CPython 3.12–3.14) has no site to attach, only task programs.
        if attachments.is_empty() && plan.in_process.is_empty() {
            return Err(SessionError::NothingAttached);
        }
        let session = Session {
            plan,
            mode,
            maps,
            streams: std::cell::RefCell::new(KernelStreams::new(ring, rings)),
            counters,
            traced,
            programs,
            parts,
            attachments,
            task_links,
            retired: Vec::new(),
            tasks: Default::default(),
        };
        for a in &session.attachments {
            if let Some(pid) = a.pid {
                session.watch_process(pid);
            }
        }
        Ok(session)
    }

    /// Puts probes in process `pid` for each of `modules` it runs: a module
    /// the plan has gets another link filtered on `pid`; a new one (another
    /// CPython version) is planned, loaded and attached first. Returns the
    /// notes of what was left out (a module without the markers). Probes
    /// `pid` already has on these modules are kept.
    pub fn attach_process(
        &mut self,
        pid: u32,
        modules: &[crate::process::module::Module],
    ) -> Result<Vec<String>, SessionError> {
        let before = self.plan.notes.len();
        for module in modules {
            let index = match self.plan.target_of(module) {
                Some(index) => index,
                None => {
                    let target = AttachTarget {
                        module: std::sync::Arc::new(module.clone()),
                        pids: Vec::new(),
                    };
                    match self.plan.add_target(target, false)? {
                        Some(index) => {
                            let loaded = self.parts.len();
                            load_parts(&self.plan, &self.maps, self.mode, loaded, &mut self.parts)?;
                            let program = load_program(&self.plan, &self.maps, self.mode, index)?;
                            self.programs.push(program);
                            index
                        }
                        None => continue,
                    }
                }
            };
            if self
                .attachments
                .iter()
                .any(|a| a.target == index && a.pid == Some(pid))
            {
                continue;
            }
            let attachment =
                attach_target(&self.plan, &self.programs, self.mode, index, Some(pid))?;
            self.attachments.push(attachment);
            self.plan.targets[index].pids.push(pid);
        }
        self.watch_process(pid);
        Ok(self.plan.notes[before..].to_vec())
    }

    /// Takes away process `pid`'s probes except those on `keep` (the
    /// modules it runs after an exec into the same binary: its links follow
    /// the exec). The probes of a process that exited or no longer maps
    /// their module can never fire again; they are retired, and closed in
    /// a helper process (the kernel's grace periods for removing them take
    /// tens of milliseconds per link) once enough have piled up or the run
    /// ends.
    pub fn retire_process(&mut self, pid: u32, keep: &[crate::process::module::Module]) {
        let (retired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.attachments)
            .into_iter()
            .partition(|a| {
                a.pid == Some(pid)
                    && !keep
                        .iter()
                        .any(|m| self.plan.target_of(m) == Some(a.target))
            });
        self.attachments = kept;
        for a in retired {
            self.plan.targets[a.target].pids.retain(|&p| p != pid);
            self.retired.extend(a._links.into_iter().map(Link::into_fd));
            self.retired
                .extend(a._perf_events.into_iter().map(PerfEvent::into_fd));
        }
        if self.retired.len() >= RETIRED_BATCH {
            pytap_sys::process::close_in_background(std::mem::take(&mut self.retired));
        }
    }

    /// Keeps reporting names and execs of `pid`, which has no probes yet
    /// (a traced process that is not a Python, whose children may be).
    pub fn watch_process(&self, pid: u32) {
        if let Some(traced) = self.traced {
            let _ = self.maps[traced].update(&pid.to_le_bytes(), &[1], 0);
        }
    }

    /// Stops reporting names and execs of `pid` (it exited).
    pub fn unwatch_process(&self, pid: u32) {
        if let Some(traced) = self.traced {
            let _ = self.maps[traced].delete(&pid.to_le_bytes());
        }
    }

    /// Whether `pid` has probes of its own (not counting `--all` ones).
    pub fn has_process(&self, pid: u32) -> bool {
        self.attachments.iter().any(|a| a.pid == Some(pid))
    }

    /// The modules `pid`'s probes are on.
    pub fn modules_of(&self, pid: u32) -> Vec<crate::process::module::Module> {
        self.attachments
            .iter()
            .filter(|a| a.pid == Some(pid))
            .map(|a| (*self.plan.targets[a.target].module).clone())
            .collect()
    }

    /// Removes every uprobe (and lowers every semaphore it raised) now;
    /// the ring buffer and maps stay readable for a final drain.
    pub fn detach(&mut self) {
        self.attachments.clear();
        self.task_links.clear();
        pytap_sys::process::close_in_background(std::mem::take(&mut self.retired));
    }

    /// [`detach`](Self::detach) for a run whose traced processes have all
    /// exited: their probes can never fire again, so the kernel's grace
    /// periods for removing them (tens of milliseconds per link) run in a
    /// short-lived helper process instead of delaying pytap's exit (see
    /// [`pytap_sys::process::close_in_background`]). Probes without a pid
    /// filter (`--all`), and the task programs then (which report every
    /// process), are never handed over.
    pub fn detach_exited(&mut self) {
        if self.attachments.iter().any(|a| a.pid.is_none()) {
            return self.detach();
        }
        let mut fds = Vec::new();
        for attachment in self.attachments.drain(..) {
            fds.extend(attachment._links.into_iter().map(Link::into_fd));
            fds.extend(attachment._perf_events.into_iter().map(PerfEvent::into_fd));
        }
        // The task programs report only traced processes, none of which is
        // left; their tracepoints want a grace period too.
        fds.extend(self.task_links.drain(..).map(Link::into_fd));
        fds.append(&mut self.retired);
        pytap_sys::process::close_in_background(fds);
    }

    /// The record streams the programs write to (ring buffer and per-CPU
    /// rings).
    pub fn streams(&self) -> &std::cell::RefCell<KernelStreams> {
        &self.streams
    }

    /// Records the ring buffer had no room for, over all CPUs.
    pub fn lost(&self) -> u64 {
        self.counter(abi::COUNTER_LOST)
    }

    /// A per-CPU counter (`abi::COUNTER_*`), summed over CPUs.
    pub fn counter(&self, index: u32) -> u64 {
        read_counter(&self.maps[self.counters], index)
    }

    /// A map of the plan, by name.
    pub fn map_named(&self, name: &str) -> Option<&Map> {
        let i = self.plan.maps.specs().iter().position(|s| s.name == name)?;
        self.maps.get(i)
    }

    /// The marker of a site (the `site` field of an event header).
    pub fn marker_of_site(&self, site: u16) -> Option<Marker> {
        self.plan.sites.get(usize::from(site)).map(|s| s.marker)
    }
}

/// Retired links closed together in one helper process.
const RETIRED_BATCH: usize = 64;

/// Name of the per-CPU counters map every plan has.
pub const COUNTERS_MAP: &str = "counters";

/// Sums a per-CPU u64 counter over all CPUs (0 if it cannot be read).
pub fn read_counter(map: &Map, index: u32) -> u64 {
    let mut values = vec![0u8; map.value_buffer_len()];
    match map.lookup(&index.to_le_bytes(), &mut values) {
        Ok(true) => values
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .sum(),
        _ => 0,
    }
}

/// Loads target `index`'s program with the session's map fds.
fn load_program(
    plan: &Plan,
    maps: &[Map],
    mode: AttachMode,
    index: usize,
) -> Result<LoadedProgram, SessionError> {
    let fds: Vec<i32> = maps.iter().map(Map::raw_fd).collect();
    let expected = (mode == AttachMode::UprobeMulti).then_some(bpf::BPF_TRACE_UPROBE_MULTI);
    let program = &plan.programs[index];
    let bytes = program
        .to_bytes(&fds)
        .map_err(|_| SessionError::Reloc(program.name.clone()))?;
    LoadedProgram::load(
        ProgType::Kprobe,
        expected,
        &bytes,
        "GPL",
        program.kernel_name(),
    )
    .map_err(|e| load_error(&program.name, e))
}

/// Loads the plan's parts from `from` on (those not loaded yet) into
/// `loaded`, and puts each in the program array at its slot: before the
/// programs that tail-call into them are attached.
fn load_parts(
    plan: &Plan,
    maps: &[Map],
    mode: AttachMode,
    from: usize,
    loaded: &mut Vec<LoadedProgram>,
) -> Result<(), SessionError> {
    let Some(array) = plan
        .maps
        .specs()
        .iter()
        .position(|s| s.kind == MapKind::ProgArray)
    else {
        return Ok(());
    };
    let fds: Vec<i32> = maps.iter().map(Map::raw_fd).collect();
    let expected = (mode == AttachMode::UprobeMulti).then_some(bpf::BPF_TRACE_UPROBE_MULTI);
    for part in plan.parts.get(from..).unwrap_or_default() {
        let program = &part.program;
        let bytes = program
            .to_bytes(&fds)
            .map_err(|_| SessionError::Reloc(program.name.clone()))?;
        let prog = LoadedProgram::load(
            ProgType::Kprobe,
            expected,
            &bytes,
            "GPL",
            program.kernel_name(),
        )
        .map_err(|e| load_error(&program.name, e))?;
        let fd = u32::try_from(prog.raw_fd()).unwrap_or(0);
        maps[array]
            .update(&part.slot.to_le_bytes(), &fd.to_le_bytes(), 0)
            .map_err(|source| SessionError::Map {
                name: plan.maps.specs()[array].name.clone(),
                source,
            })?;
        loaded.push(prog);
    }
    Ok(())
}

/// Attaches target `index`'s program to its sites, for `pid` or (None)
/// every process mapping the module.
fn attach_target(
    plan: &Plan,
    programs: &[LoadedProgram],
    mode: AttachMode,
    index: usize,
    pid: Option<u32>,
) -> Result<Attachment, SessionError> {
    let target = &plan.targets[index];
    let program = &programs[index];
    let sites: Vec<&PlannedSite> = plan.sites_of_module(index).collect();
    let path = &target.module.open_path;
    let (links, perf_events) = match mode {
        AttachMode::UprobeMulti => {
            attach_multi(program, path, &sites, pid).map(|l| (vec![l], Vec::new()))
        }
        AttachMode::PerfEvent => attach_perf(program, path, &sites, pid),
    }
    .map_err(|source| {
        privilege_or("attaching uprobes", source, |source| SessionError::Attach {
            path: target.module.path.display().to_string(),
            source,
        })
    })?;
    Ok(Attachment {
        target: index,
        pid,
        _links: links,
        _perf_events: perf_events,
    })
}

/// The rename and exec programs (see [`crate::engine::codegen::task`]).
/// Without them (a kernel without raw tracepoints) names are read from
/// `/proc` when a process is first seen, which a note says.
/// When the plan sends names once ([`TaskMaps::epoch`]) they are
/// required: a failure is an error.
fn attach_task_programs(maps: &[Map], refs: TaskMaps) -> Result<Vec<Link>, SessionError> {
    let fds: Vec<i32> = maps.iter().map(Map::raw_fd).collect();
    let mut links = Vec::new();
    for point in TaskPoint::ALL {
        let attached = task::build(point, refs)
            .map_err(|e| e.to_string())
            .and_then(|program| {
                let bytes = program
                    .to_bytes(&fds)
                    .map_err(|_| format!("relocating {}", program.name))?;
                let loaded = LoadedProgram::load(
                    ProgType::RawTracepoint,
                    None,
                    &bytes,
                    "GPL",
                    program.kernel_name(),
                )
                .map_err(|e| {
                    let last = e.log.lines().rev().find(|l| !l.trim().is_empty());
                    format!(
                        "{}{}",
                        e.source,
                        last.map(|l| format!(": {l}")).unwrap_or_default()
                    )
                })?;
                Link::raw_tracepoint(&loaded, point.tracepoint()).map_err(|e| e.to_string())
            });
        match attached {
            Ok(link) => links.push(link),
            Err(reason) if refs.epoch.is_some() => {
                return Err(SessionError::TaskPrograms {
                    tracepoint: point.tracepoint(),
                    reason,
                });
            }
            Err(e) => {
                crate::notice!(
                    "cannot learn thread names and execs from the kernel's {} tracepoint ({e}); names are read when a process is first seen",
                    point.tracepoint()
                );
                return Ok(Vec::new());
            }
        }
    }
    Ok(links)
}

fn load_error(name: &str, e: LoadError) -> SessionError {
    // EACCES with a verifier log is the verifier refusing the program;
    // without one, the kernel refused the caller.
    if matches!(e.source.raw_os_error(), Some(1) | Some(13)) && e.log.trim().is_empty() {
        return SessionError::Privilege {
            what: "loading BPF programs",
            source: SysError::new("BPF_PROG_LOAD", e.source),
        };
    }
    let lines: Vec<&str> = e.log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    SessionError::Load {
        name: name.to_string(),
        source: e.source,
        log_tail: tail,
    }
}

fn attach_multi(
    program: &LoadedProgram,
    path: &Path,
    sites: &[&PlannedSite],
    pid: Option<u32>,
) -> Result<Link, SysError> {
    let ref_ctrs: Vec<u64> = sites.iter().map(|s| s.ref_ctr_offset).collect();
    let cookies: Vec<u64> = sites.iter().map(|s| u64::from(s.cookie)).collect();
    let offsets: Vec<u64> = sites.iter().map(|s| s.file_offset).collect();
    match Link::uprobe_multi(program, path, &offsets, &ref_ctrs, &cookies, pid, false) {
        // An arming anchor can collide with someone else's uprobe on the same
        // instruction (with another semaphore): arm on the line site instead.
        Err(_) if sites.iter().any(|s| s.fallback_offset.is_some()) => {
            let offsets: Vec<u64> = sites
                .iter()
                .map(|s| s.fallback_offset.unwrap_or(s.file_offset))
                .collect();
            Link::uprobe_multi(program, path, &offsets, &ref_ctrs, &cookies, pid, false)
        }
        other => other,
    }
}

fn attach_perf(
    program: &LoadedProgram,
    path: &Path,
    sites: &[&PlannedSite],
    pid: Option<u32>,
) -> Result<(Vec<Link>, Vec<PerfEvent>), SysError> {
    let mut links = Vec::new();
    let mut events = Vec::new();
    for site in sites {
        let event = match (
            PerfEvent::uprobe(path, site.file_offset, site.ref_ctr_offset, pid, false),
            site.fallback_offset,
        ) {
            (Err(_), Some(fallback)) => {
                PerfEvent::uprobe(path, fallback, site.ref_ctr_offset, pid, false)?
            }
            (result, _) => result?,
        };
        links.push(Link::perf_event(program, &event, u64::from(site.cookie))?);
        events.push(event);
    }
    Ok((links, events))
}
