//! A live stack sampler: its maps and programs in the kernel, a perf
//! event on every CPU running the dispatch program, and what pytap tells
//! it about each sampled process (its runtime, its layout's walker, its
//! threads). The programs are `codegen::pystack`'s; the samples are read
//! from its ring buffer by the sampler's driver (`runner::sampling`).
//!
//! Nothing of this lives in the target: the processes are only read. The
//! kernel removes every map, program and event when pytap exits, killed
//! or not.

use std::collections::{BTreeMap, HashMap};

use pytap_abi::sample::{MODE_ALL, MODE_GIL, ProcConfig, ThreadKey};
use pytap_sys::bpf::{Map, MapType, ProgType, Program as LoadedProgram};
use pytap_sys::perf::CpuSamplers;
use pytap_sys::ringbuf::RingBuf;

use super::codegen::pystack::{self, SamplerMaps};
use super::codegen::{MapKind, MapTable};
use super::session::error::{SessionError, load_error, privilege_or};
use crate::cpython::layout::StackLayout;
use crate::cpython::stack::walk;
use crate::process::python::Interpreter;

/// Where `task_struct.thread.fsbase` is, from the kernel's BTF.
pub fn fsbase_offset() -> Result<u32, SessionError> {
    let btf = pytap_ebpf::btf::Btf::from_file("/sys/kernel/btf/vmlinux").map_err(|e| {
        SessionError::Sampler(format!(
            "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux), which says where a \
             task's thread pointer is: {e}"
        ))
    })?;
    btf.member_offset(&["task_struct", "thread", "fsbase"])
        .map_err(|e| SessionError::Sampler(format!("no task_struct.thread.fsbase in BTF: {e}")))
}

/// A process being sampled.
#[derive(Debug)]
struct Sampled {
    /// Its interpreter.
    interpreter: Interpreter,
    /// The thread keys pytap put in the `threads` map for it.
    threads: Vec<ThreadKey>,
}

/// The sampler in the kernel.
#[derive(Debug)]
pub struct Sampler {
    maps: Vec<Map>,
    refs: SamplerMaps,
    fsbase: u32,
    walkers: HashMap<StackLayoutKey, (u32, LoadedProgram)>,
    /// Dropped before the programs: the events stop first.
    _samplers: CpuSamplers,
    _dispatch: LoadedProgram,
    ring: RingBuf,
    processes: BTreeMap<u32, Sampled>,
    /// Only the GIL holder's samples.
    gil_only: bool,
    /// Native stacks too.
    native: bool,
}

/// Layouts are told apart by everything they hold.
type StackLayoutKey = String;

fn layout_key(l: &StackLayout) -> StackLayoutKey {
    format!("{l:?}")
}

impl Sampler {
    /// Loads the sampler and starts a perf event at `rate_hz` on every
    /// CPU; with `gil_only`, only samples of the thread holding the GIL
    /// are sent.
    /// With `native`, each sample holds the native stack too.
    pub fn start(
        rate_hz: u64,
        ring_bytes: u32,
        gil_only: bool,
        native: bool,
    ) -> Result<Sampler, SessionError> {
        let fsbase = fsbase_offset()?;
        let mut table = MapTable::default();
        let refs = pystack::maps(&mut table, ring_bytes);
        let maps = create(&table)?;
        let fds: Vec<i32> = maps.iter().map(Map::raw_fd).collect();
        let dispatch = load(&pystack::dispatch(refs).map_err(build_error)?, &fds)?;
        let ring = RingBuf::new(&maps[refs.walk.samples.0 as usize]).map_err(|source| {
            SessionError::Map {
                name: "samples".into(),
                source,
            }
        })?;
        let samplers = CpuSamplers::attach(&dispatch, rate_hz, 0).map_err(|e| {
            privilege_or("sampling every CPU", e, |source| {
                SessionError::Sampler(format!("sampling every CPU at {rate_hz} Hz: {source}"))
            })
        })?;
        Ok(Sampler {
            maps,
            refs,
            fsbase,
            walkers: HashMap::new(),
            _samplers: samplers,
            _dispatch: dispatch,
            ring,
            processes: BTreeMap::new(),
            gil_only,
            native,
        })
    }

    /// Starts sampling process `pid`, whose interpreter is `interpreter`.
    pub fn add(&mut self, interpreter: Interpreter) -> Result<(), SessionError> {
        let pid = interpreter.process.pid;
        let slot = self.walker_slot(&interpreter.runtime.layout)?;
        let config = ProcConfig {
            runtime: interpreter.runtime.address,
            code_type: interpreter.runtime.code_type,
            slot,
            mode: if self.gil_only { MODE_GIL } else { MODE_ALL },
        };
        tell_process(self.map(self.refs.walk.procs), pid, &config)?;
        self.processes.insert(
            pid,
            Sampled {
                interpreter,
                threads: Vec::new(),
            },
        );
        self.refresh_threads(pid);
        Ok(())
    }

    /// Whether `pid` is sampled.
    pub fn has(&self, pid: u32) -> bool {
        self.processes.contains_key(&pid)
    }

    /// The interpreter of a sampled process.
    pub fn interpreter(&self, pid: u32) -> Option<&Interpreter> {
        self.processes.get(&pid).map(|p| &p.interpreter)
    }

    /// The sampled processes.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.keys().copied().collect()
    }

    /// Stops sampling `pid` (it exited, or executed something else).
    pub fn remove(&mut self, pid: u32) {
        let Some(p) = self.processes.remove(&pid) else {
            return;
        };
        let walk = self.refs.walk;
        forget_process(
            self.map(walk.procs),
            self.map(walk.threads),
            pid,
            &p.threads,
        );
    }

    /// Tells the program the thread states of `pid` now (read from its
    /// thread list), so that a sample finds its thread's in one lookup;
    /// threads gone are taken out. A thread started since is still found
    /// by the program's own walk of the list.
    pub fn refresh_threads(&mut self, pid: u32) {
        let Some(p) = self.processes.get(&pid) else {
            return;
        };
        let map = &self.maps[self.refs.walk.threads.0 as usize];
        let Some(keys) = tell_threads(map, &p.threads, &p.interpreter) else {
            return;
        };
        if let Some(p) = self.processes.get_mut(&pid) {
            p.threads = keys;
        }
    }

    /// The samples ring.
    pub fn ring(&mut self) -> &mut RingBuf {
        &mut self.ring
    }

    /// Samples the ring had no room for.
    pub fn lost(&self) -> u64 {
        super::session::read_counter(
            self.map(self.refs.walk.counters),
            crate::engine::abi::COUNTER_LOST,
        )
    }

    fn map(&self, r: pytap_ebpf::MapRef) -> &Map {
        &self.maps[r.0 as usize]
    }

    /// The program-array slot of `layout`'s walker, loading it the first time.
    fn walker_slot(&mut self, layout: &StackLayout) -> Result<u32, SessionError> {
        let key = layout_key(layout);
        if let Some((slot, _)) = self.walkers.get(&key) {
            return Ok(*slot);
        }
        let slot = self.walkers.len() as u32;
        if slot >= pystack::MAX_LAYOUTS {
            return Err(SessionError::Sampler(
                "too many CPython layouts in one profile".into(),
            ));
        }
        let program =
            pystack::walker(layout, self.fsbase, self.refs, self.native).map_err(build_error)?;
        let fds: Vec<i32> = self.maps.iter().map(Map::raw_fd).collect();
        let loaded = load(&program, &fds)?;
        self.map(self.refs.walkers)
            .update(&slot.to_le_bytes(), &loaded.raw_fd().to_le_bytes(), 0)
            .map_err(|source| SessionError::Map {
                name: "walkers".into(),
                source,
            })?;
        self.walkers.insert(key, (slot, loaded));
        Ok(slot)
    }
}

fn thread_key_bytes(k: &ThreadKey) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&k.pid.to_le_bytes());
    b[8..].copy_from_slice(&k.fsbase.to_le_bytes());
    b
}

/// Tells a walk's `procs` map about process `pid`.
pub fn tell_process(procs: &Map, pid: u32, config: &ProcConfig) -> Result<(), SessionError> {
    let mut value = Vec::with_capacity(24);
    value.extend_from_slice(&config.runtime.to_le_bytes());
    value.extend_from_slice(&config.code_type.to_le_bytes());
    value.extend_from_slice(&config.slot.to_le_bytes());
    value.extend_from_slice(&config.mode.to_le_bytes());
    procs
        .update(&pid.to_le_bytes(), &value, 0)
        .map_err(|source| SessionError::Map {
            name: "procs".into(),
            source,
        })
}

/// Tells a walk's `threads` map the thread states of `interpreter`'s
/// process now (read from its thread list), so that a walk finds its
/// thread's in one lookup; those of `old` that are gone are taken out.
/// Returns the keys now in the map, `None` when the list cannot be read.
/// A thread started since is still found by the walk's own scan.
pub fn tell_threads(
    threads: &Map,
    old: &[ThreadKey],
    interpreter: &Interpreter,
) -> Option<Vec<ThreadKey>> {
    let pid = interpreter.process.pid;
    let mem = interpreter.memory();
    let (found, _) = walk::threads(&mem, &interpreter.runtime, 0).ok()?;
    let keys: Vec<(ThreadKey, u64)> = found
        .iter()
        .map(|t| {
            (
                ThreadKey {
                    pid,
                    pad: 0,
                    fsbase: t.thread_id,
                },
                t.tstate,
            )
        })
        .collect();
    for gone in old {
        if !keys.iter().any(|(k, _)| k == gone) {
            let _ = threads.delete(&thread_key_bytes(gone));
        }
    }
    for (key, tstate) in &keys {
        let _ = threads.update(&thread_key_bytes(key), &tstate.to_le_bytes(), 0);
    }
    Some(keys.into_iter().map(|(k, _)| k).collect())
}

/// Takes process `pid` and its `threads` out of a walk's maps.
pub fn forget_process(procs: &Map, threads_map: &Map, pid: u32, threads: &[ThreadKey]) {
    let _ = procs.delete(&pid.to_le_bytes());
    for key in threads {
        let _ = threads_map.delete(&thread_key_bytes(key));
    }
}

fn build_error(e: pytap_ebpf::BuildError) -> SessionError {
    SessionError::Sampler(format!("building the sampler's program: {e}"))
}

fn create(table: &MapTable) -> Result<Vec<Map>, SessionError> {
    table
        .specs()
        .iter()
        .map(|spec| {
            let map_type = match spec.kind {
                MapKind::Hash => MapType::Hash,
                MapKind::ProgArray => MapType::ProgArray,
                MapKind::PercpuArray => MapType::PercpuArray,
                MapKind::RingBuf => MapType::RingBuf,
                _ => MapType::Array,
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
        .collect()
}

fn load(program: &pytap_ebpf::Program, fds: &[i32]) -> Result<LoadedProgram, SessionError> {
    let bytes = program
        .to_bytes(fds)
        .map_err(|_| SessionError::Reloc(program.name.clone()))?;
    LoadedProgram::load(
        ProgType::PerfEvent,
        None,
        &bytes,
        "GPL",
        program.kernel_name(),
    )
    .map_err(|e| load_error(&program.name, e))
}
