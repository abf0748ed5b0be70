//! Putting a plan into the kernel before anything is attached: its maps
//! (and the record streams read from them), its programs and the parts
//! they tail-call, and the task programs on the kernel's tracepoints.

use pytap_sys::bpf::{self, Link, Map, MapType, ProgType, Program as LoadedProgram};
use pytap_sys::cpuring::CpuRings;
use pytap_sys::ringbuf::RingBuf;

use super::AttachMode;
use super::error::{SessionError, load_error, privilege_or};
use crate::engine::abi;
use crate::engine::codegen::task::{self, TaskMaps, TaskPoint};
use crate::engine::codegen::{MapKind, MapTable, inplace};
use crate::engine::plan::Plan;
use crate::engine::streams::{self, KernelStreams};

/// Creates every map of the table, in `MapRef` order.
pub(super) fn create_maps(table: &MapTable) -> Result<Vec<Map>, SessionError> {
    table
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
        .collect()
}

/// Maps the ring buffer every plan has and, when the plan writes records
/// in place, the per-CPU rings: the streams the run loop reads.
pub(super) fn open_streams(table: &MapTable, maps: &[Map]) -> Result<KernelStreams, SessionError> {
    let events_map = table
        .specs()
        .iter()
        .position(|s| s.kind == MapKind::RingBuf)
        .expect("every plan has a ring buffer");
    let ring = RingBuf::new(&maps[events_map]).map_err(|source| SessionError::Map {
        name: "events".into(),
        source,
    })?;
    let rings = match table
        .specs()
        .iter()
        .position(|s| s.name == inplace::RINGS_MAP)
    {
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
    Ok(KernelStreams::new(ring, rings))
}

/// Loads one of the plan's programs (a module's, or a part) with the
/// session's map fds, for the attach mode it will be used with.
fn load_uprobe_program(
    program: &pytap_ebpf::Program,
    maps: &[Map],
    mode: AttachMode,
) -> Result<LoadedProgram, SessionError> {
    let fds: Vec<i32> = maps.iter().map(Map::raw_fd).collect();
    // The kernel refuses a uprobe_multi program on a perf event and the
    // other way round: the attach type is fixed at load.
    let expected = (mode == AttachMode::UprobeMulti).then_some(bpf::BPF_TRACE_UPROBE_MULTI);
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

/// Loads target `index`'s program with the session's map fds.
pub(super) fn load_program(
    plan: &Plan,
    maps: &[Map],
    mode: AttachMode,
    index: usize,
) -> Result<LoadedProgram, SessionError> {
    load_uprobe_program(&plan.programs[index], maps, mode)
}

/// Loads the plan's function programs from `from` on (those not loaded
/// yet) into `loaded`.
pub(super) fn load_functions(
    plan: &Plan,
    maps: &[Map],
    mode: AttachMode,
    loaded: &mut Vec<LoadedProgram>,
) -> Result<(), SessionError> {
    for f in &plan.function_programs[loaded.len()..] {
        loaded.push(load_uprobe_program(&f.program, maps, mode)?);
    }
    Ok(())
}

/// Loads the plan's profile programs and starts each one's clock on every
/// CPU.
pub(super) fn start_profiles(
    plan: &Plan,
    maps: &[Map],
) -> Result<Vec<(pytap_sys::perf::CpuSamplers, LoadedProgram)>, SessionError> {
    let fds: Vec<i32> = maps.iter().map(Map::raw_fd).collect();
    plan.profile_programs
        .iter()
        .map(|p| {
            let bytes = p
                .program
                .to_bytes(&fds)
                .map_err(|_| SessionError::Reloc(p.program.name.clone()))?;
            let loaded = LoadedProgram::load(
                ProgType::PerfEvent,
                None,
                &bytes,
                "GPL",
                p.program.kernel_name(),
            )
            .map_err(|e| load_error(&p.program.name, e))?;
            let clocks = pytap_sys::perf::CpuSamplers::attach(&loaded, p.hz, 0).map_err(|e| {
                privilege_or("sampling every CPU", e, |source| {
                    SessionError::Sampler(format!(
                        "a profile probe's clock at {} Hz on every CPU: {source}",
                        p.hz
                    ))
                })
            })?;
            Ok((clocks, loaded))
        })
        .collect()
}

/// Loads the plan's parts from `from` on (those not loaded yet) into
/// `loaded`, and puts each in the program array at its slot: before the
/// programs that tail-call into them are attached.
pub(super) fn load_parts(
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
    for part in plan.parts.get(from..).unwrap_or_default() {
        let prog = load_uprobe_program(&part.program, maps, mode)?;
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

/// The rename and exec programs (see [`crate::engine::codegen::task`]).
/// Without them (a kernel without raw tracepoints) names are read from
/// `/proc` when a process is first seen, which a note says.
/// When the plan sends names once ([`TaskMaps::epoch`]) they are
/// required: a failure is an error.
pub(super) fn attach_task_programs(
    maps: &[Map],
    refs: TaskMaps,
) -> Result<Vec<Link>, SessionError> {
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
