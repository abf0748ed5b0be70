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
use pytap_sys::perf::PerfEvent;
use pytap_sys::ringbuf::RingBuf;
use pytap_sys::{LoadError, SysError};

use super::abi;
use super::codegen::MapKind;
use super::plan::{Plan, PlannedSite};
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
}

/// The live session.
#[derive(Debug)]
pub struct Session {
    /// The plan it was made from (sites, modules, notes).
    pub plan: Plan,
    /// How the probes were attached.
    pub mode: AttachMode,
    /// Maps, in `MapRef` order.
    pub maps: Vec<Map>,
    // In a RefCell so the run loop can consume records while handing the
    // consumer a shared reference to the session.
    ring: std::cell::RefCell<RingBuf>,
    counters: usize,
    // Kept alive while attached: dropping them detaches.
    _programs: Vec<LoadedProgram>,
    links: Vec<Link>,
    perf_events: Vec<PerfEvent>,
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
    /// kernels older than 6.6, where it is chosen automatically).
    pub fn start(plan: Plan, force_perf_event: bool) -> Result<Session, SessionError> {
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
                let map_type = match spec.kind {
                    MapKind::Array => MapType::Array,
                    MapKind::PercpuArray => MapType::PercpuArray,
                    MapKind::Hash => MapType::Hash,
                    MapKind::PercpuHash => MapType::PercpuHash,
                    MapKind::LruHash => MapType::LruHash,
                    MapKind::RingBuf => MapType::RingBuf,
                };
                Map::create(
                    map_type,
                    spec.key_size,
                    spec.value_size,
                    spec.max_entries,
                    0,
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
        let fds: Vec<i32> = maps.iter().map(Map::raw_fd).collect();
        let expected = (mode == AttachMode::UprobeMulti).then_some(bpf::BPF_TRACE_UPROBE_MULTI);
        let programs = plan
            .programs
            .iter()
            .map(|program| {
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
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut links = Vec::new();
        let mut events = Vec::new();
        for (index, (target, program)) in plan.targets.iter().zip(&programs).enumerate() {
            let sites: Vec<&PlannedSite> = plan.sites_of_module(index).collect();
            let pids: Vec<Option<u32>> = if target.pids.is_empty() {
                vec![None]
            } else {
                target.pids.iter().copied().map(Some).collect()
            };
            let path = &target.module.open_path;
            for pid in pids {
                let attached = match mode {
                    AttachMode::UprobeMulti => {
                        attach_multi(program, path, &sites, pid).map(|l| links.push(l))
                    }
                    AttachMode::PerfEvent => {
                        attach_perf(program, path, &sites, pid).map(|(mut l, mut e)| {
                            links.append(&mut l);
                            events.append(&mut e);
                        })
                    }
                };
                attached.map_err(|source| {
                    privilege_or("attaching uprobes", source, |source| SessionError::Attach {
                        path: target.module.path.display().to_string(),
                        source,
                    })
                })?;
            }
        }
        let events_map = plan
            .maps
            .specs()
            .iter()
            .position(|s| s.kind == MapKind::RingBuf)
            .expect("every plan has a ring buffer");
        let counters = plan
            .maps
            .specs()
            .iter()
            .position(|s| s.name == COUNTERS_MAP)
            .expect("every plan has counters");
        let ring = RingBuf::new(&maps[events_map]).map_err(|source| SessionError::Map {
            name: "events".into(),
            source,
        })?;
        Ok(Session {
            plan,
            mode,
            maps,
            ring: std::cell::RefCell::new(ring),
            counters,
            _programs: programs,
            links,
            perf_events: events,
        })
    }

    /// Removes every uprobe (and lowers every semaphore it raised) now;
    /// the ring buffer and maps stay readable for a final drain.
    pub fn detach(&mut self) {
        self.links.clear();
        self.perf_events.clear();
    }

    /// The ring buffer the programs write to.
    pub fn ring(&self) -> &std::cell::RefCell<RingBuf> {
        &self.ring
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

fn load_error(name: &str, e: LoadError) -> SessionError {
    if matches!(e.source.raw_os_error(), Some(1) | Some(13)) {
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
