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

mod attach;
pub(crate) mod error;
mod load;
pub mod stacks;

use pytap_sys::bpf::{self, Link, Map, Program as LoadedProgram};
use pytap_sys::perf::PerfEvent;

use self::attach::{Attachment, Programs, attach_planned, attach_target};
use self::load::{
    attach_task_programs, create_maps, load_functions, load_parts, load_program, open_streams,
    start_profiles,
};
use self::stacks::SessionStacks;
use super::abi;
use super::codegen::task::{self, TRACED_MAP};
use super::plan::{AttachTarget, Plan};
use super::streams::KernelStreams;
use super::tasks::TaskNames;
use crate::cpython::Marker;

pub use self::error::SessionError;

/// How the uprobes were attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// One uprobe_multi link per module (and pid).
    UprobeMulti,
    /// One perf_event uprobe and perf link per site (and pid).
    PerfEvent,
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
    /// The function hooks' programs ([`Plan::function_programs`]).
    function_programs: Vec<LoadedProgram>,
    /// The parts of split bodies ([`Plan::parts`]), in the program array.
    parts: Vec<LoadedProgram>,
    /// The profile programs ([`Plan::profile_programs`]) and their clocks
    /// on every CPU (dropped first: the clocks stop before the programs go).
    _profiles: Vec<(pytap_sys::perf::CpuSamplers, LoadedProgram)>,
    attachments: Vec<Attachment>,
    task_links: Vec<Link>,
    /// Links of processes that exited or executed another program: inert,
    /// waiting to be closed in the background.
    retired: Vec<std::os::fd::OwnedFd>,
    /// The traced threads' names as of the events being handled.
    pub tasks: std::cell::RefCell<TaskNames>,
    /// The processes whose event stacks the programs walk, and the ring
    /// the stacks arrive in, when the plan walks them.
    pub stacks: Option<std::cell::RefCell<SessionStacks>>,
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
        let maps = create_maps(&plan.maps)?;
        let position = |name: &str| plan.maps.specs().iter().position(|s| s.name == name);
        let counters = position(COUNTERS_MAP).expect("every plan has counters");
        let traced = position(TRACED_MAP);
        let streams = open_streams(&plan.maps, &maps)?;
        let stacks = SessionStacks::open(&plan.maps, &maps)?.map(std::cell::RefCell::new);
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
        let mut function_programs = Vec::new();
        load_functions(&plan, &maps, mode, &mut function_programs)?;
        let loaded = Programs {
            modules: &programs,
            functions: &function_programs,
        };
        let attachments = attach_planned(&mut plan, loaded, mode)?;
        let profiles = start_profiles(&plan, &maps)?;
        // A plan whose function events all come from inside the targets
        // (CPython 3.12–3.14) has no site to attach, only task programs.
        if attachments.is_empty() && plan.in_process.is_empty() && profiles.is_empty() {
            return Err(SessionError::NothingAttached);
        }
        let session = Session {
            plan,
            mode,
            maps,
            streams: std::cell::RefCell::new(streams),
            counters,
            traced,
            programs,
            function_programs,
            parts,
            _profiles: profiles,
            attachments,
            task_links,
            retired: Vec::new(),
            tasks: Default::default(),
            stacks,
        };
        for a in &session.attachments {
            if let Some(pid) = a.pid {
                session.watch_process(pid);
                session.tell_stacks(pid);
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
                            load_functions(
                                &self.plan,
                                &self.maps,
                                self.mode,
                                &mut self.function_programs,
                            )?;
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
            let loaded = Programs {
                modules: &self.programs,
                functions: &self.function_programs,
            };
            let attachment = attach_target(&self.plan, loaded, self.mode, index, Some(pid))?;
            self.attachments.push(attachment);
            self.plan.targets[index].pids.push(pid);
        }
        self.watch_process(pid);
        self.tell_stacks(pid);
        Ok(self.plan.notes[before..].to_vec())
    }

    /// Tells the stack walk about process `pid` (anew after an exec), when
    /// the plan walks stacks.
    fn tell_stacks(&self, pid: u32) {
        if let Some(stacks) = &self.stacks {
            stacks.borrow_mut().add(&self.maps, pid);
        }
    }

    /// Takes away process `pid`'s probes except those on `keep` (the
    /// modules it runs after an exec into the same binary: its links follow
    /// the exec). The probes of a process that exited or no longer maps
    /// their module can never fire again; they are retired, and closed in
    /// a helper process (the kernel's grace periods for removing them take
    /// tens of milliseconds per link) once enough have piled up or the run
    /// ends.
    pub fn retire_process(&mut self, pid: u32, keep: &[crate::process::module::Module]) {
        // Its memory is gone or another program's: the walk must not read
        // it with the old addresses.
        if let Some(stacks) = &self.stacks {
            stacks.borrow_mut().remove(&self.maps, pid);
        }
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
