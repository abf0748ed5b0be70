//! What to attach where, decided before anything is loaded.
//!
//! A [`Plan`] is pure: from the modules, the markers asked for and a
//! handler it picks the sites, assigns each a cookie, adds the sites that
//! only arm another marker (3.11's `function__entry`), and generates one
//! program per module. `--dump-bpf` prints a plan; a
//! [`crate::engine::session::Session`] loads and attaches one.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use pytap_ebpf::{Program, disassemble_with};
use pytap_elf::ArgSpec;

use super::codegen::{self, CodegenError, Handler, MapTable, SiteCode};
use crate::cpython::objects::ObjectLayout;
use crate::cpython::{Marker, verdict};
use crate::engine::capture_mode::CaptureMode;
use crate::process::module::{self, Module};

/// How 3.11's `function__entry` gets armed (see `cpython::verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArmMode {
    /// Raise the `line` semaphore through a uprobe on an instruction that
    /// only runs when the interpreter dies (`Py_FatalError`): no trap per line.
    #[default]
    Anchor,
    /// Attach to the `line` site itself: the semaphore goes up the same way,
    /// but every line traps (slower; the fallback when no anchor exists).
    LineSite,
}

/// Why a site is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteRole {
    /// A marker the tool asked for.
    Marker,
    /// Only to raise another marker's semaphore; its program path exits at once.
    Arming(String),
}

/// One uprobe to attach.
#[derive(Debug, Clone)]
pub struct PlannedSite {
    /// The attach cookie and index in [`Plan::sites`].
    pub cookie: u16,
    /// Index into [`Plan::targets`].
    pub module: usize,
    /// The marker the site belongs to (for an anchor: the marker it arms).
    pub marker: Marker,
    /// Why it is attached.
    pub role: SiteRole,
    /// Uprobe file offset.
    pub file_offset: u64,
    /// Semaphore file offset (`ref_ctr_offset`), 0 for none.
    pub ref_ctr_offset: u64,
    /// Argument spec (empty for arming sites).
    pub args: Vec<ArgSpec>,
    /// For an arming anchor: the `line` site's own offset, to attach to
    /// instead if the anchor instruction cannot take this uprobe.
    pub fallback_offset: Option<u64>,
}

/// A part of a split body: a program a tail call reaches.
#[derive(Debug, Clone)]
pub struct PartProgram {
    /// Its slot in the handler's program array ([`codegen::part_slot`]).
    pub slot: u32,
    /// The program.
    pub program: Program,
}

/// A module to attach to and the processes to filter on.
#[derive(Debug, Clone)]
pub struct AttachTarget {
    /// The module.
    pub module: Arc<Module>,
    /// Processes to attach for; empty means every process that maps it.
    pub pids: Vec<u32>,
}

/// Everything needed to load and attach, and nothing loaded yet. A live
/// session grows its plan when a traced process runs a module the plan
/// does not have yet ([`Plan::add_target`]): the handler is kept for that.
pub struct Plan {
    /// Modules, with their pid filters.
    pub targets: Vec<AttachTarget>,
    /// Every site; `sites[i].cookie == i`.
    pub sites: Vec<PlannedSite>,
    /// Maps the programs use.
    pub maps: MapTable,
    /// One program per target module (same order as `targets`).
    pub programs: Vec<Program>,
    /// The parts of bodies split over several programs, for the handler's
    /// program array.
    pub parts: Vec<PartProgram>,
    /// Markers actually attached in at least one module.
    pub markers: BTreeSet<Marker>,
    /// What pytap did on the user's behalf (arming) or left out and why,
    /// for the user; new ones are added as modules are.
    pub notes: Vec<String>,
    /// Modules whose function events the in-process capture serves
    /// instead of markers.
    pub in_process: Vec<Arc<Module>>,
    /// Whether a process whose code may have names that are not UTF-8 is
    /// kept from the function and line markers (`crate::engine::hazard`;
    /// off with `--force`).
    pub guard_names: bool,
    requested: BTreeSet<Marker>,
    strict: bool,
    arm_mode: ArmMode,
    capture: CaptureMode,
    handler: Box<dyn Handler>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("targets", &self.targets)
            .field("sites", &self.sites)
            .field("maps", &self.maps)
            .field("markers", &self.markers)
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A marker the module does not have.
    #[error("{path} (CPython{version}) has no {marker} marker: {reason}")]
    Absent {
        /// The module.
        path: String,
        /// ` 3.13.5` or empty.
        version: String,
        /// The marker.
        marker: Marker,
        /// Why, from the verdict table.
        reason: &'static str,
    },
    /// No module has any of the markers.
    #[error("none of the traced modules has any of the requested markers ({0})")]
    NothingToAttach(String),
    /// A site without a file offset or semaphore offset.
    #[error("{path}: marker {marker} cannot be attached: {why}")]
    BadSite {
        /// The module.
        path: String,
        /// The marker.
        marker: Marker,
        /// What is wrong.
        why: String,
    },
    /// More sites than cookies fit in the event header.
    #[error("too many marker sites ({0}); the limit is 65535")]
    TooManySites(usize),
    /// Program generation failed.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
}

impl Plan {
    /// Plans `markers` on `targets`. When `strict` (the user named the
    /// markers), a marker the only target lacks is an error naming the
    /// version and the reason; with several targets, a module that lacks
    /// one, or cannot be planned at all, gets a note and the others go on.
    /// Otherwise absent markers are silently left out.
    pub fn new(
        targets: Vec<AttachTarget>,
        markers: &BTreeSet<Marker>,
        strict: bool,
        maps: MapTable,
        handler: Box<dyn Handler>,
        arm_mode: ArmMode,
        capture: CaptureMode,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan {
            in_process: Vec::new(),
            guard_names: true,
            capture,
            targets: Vec::new(),
            sites: Vec::new(),
            maps,
            programs: Vec::new(),
            parts: Vec::new(),
            markers: BTreeSet::new(),
            notes: Vec::new(),
            requested: markers.clone(),
            strict,
            arm_mode,
            handler,
        };
        let single = targets.len() == 1;
        for target in targets {
            let module = target.module.clone();
            match plan.add_target(target, single) {
                Ok(_) => {}
                Err(e) if single => return Err(e),
                Err(e) => plan.notes.push(format!(
                    "{}{}: not traced: {e}",
                    module::display(&module.path),
                    module.version_suffix()
                )),
            }
        }
        if plan.markers.is_empty() && plan.in_process.is_empty() {
            let names: Vec<_> = markers.iter().map(|m| m.name()).collect();
            return Err(PlanError::NothingToAttach(names.join(", ")));
        }
        Ok(plan)
    }

    /// Adds a module and generates its program. Returns its index, or
    /// `None` when it has none of the markers (a note says so). With
    /// `absent_is_error`, a requested marker the module lacks is an error
    /// (the user named it and this is the only module); otherwise a note.
    pub fn add_target(
        &mut self,
        target: AttachTarget,
        absent_is_error: bool,
    ) -> Result<Option<usize>, PlanError> {
        let index = self.targets.len();
        let module = target.module.clone();
        let mut sites: Vec<PlannedSite> = Vec::new();
        let mut notes = Vec::new();
        let mut attached = BTreeSet::new();
        let in_process = module
            .py_version()
            .is_some_and(|v| self.capture.serves(v.minor_version()));
        let mut served = false;
        for &marker in &self.requested {
            if in_process && CaptureMode::SERVES.contains(&marker) {
                served = true;
                continue;
            }
            let found = module.sites_of(marker);
            if found.is_empty() {
                if self.strict && absent_is_error {
                    return Err(absent(&module, marker));
                }
                if self.strict {
                    notes.push(absent(&module, marker).to_string());
                }
                continue;
            }
            attached.insert(marker);
            for site in found {
                sites.push(planned_site(
                    &module,
                    index,
                    site,
                    marker,
                    SiteRole::Marker,
                )?);
            }
        }
        if served
            && !self
                .in_process
                .iter()
                .any(|m| m.dev == module.dev && m.inode == module.inode)
        {
            self.in_process.push(module.clone());
        }
        if attached.is_empty() {
            if served {
                self.notes.append(&mut notes);
                return Ok(None);
            }
            let minor = module.py_version().map(|v| v.minor_version());
            let wants_calls = self
                .requested
                .iter()
                .any(|m| CaptureMode::SERVES.contains(m));
            if wants_calls && minor.is_some_and(|v| CaptureMode::Auto.serves(v)) {
                // Without a `traced` map the session watches every process
                // (`--all`), which is never given the agent.
                let everywhere = !self
                    .maps
                    .specs()
                    .iter()
                    .any(|s| s.name == codegen::task::TRACED_MAP);
                let why = if everywhere {
                    "and --all gives no process pytap's agent: trace it with `-p PID` (3.14) or \
                     launch it under pytap (`-- python3 app.py`)"
                } else {
                    "and this interpreter was not given pytap's agent (the command's own program \
                     has markers): `--capture in-process` gives it to every interpreter the \
                     command starts"
                };
                notes.push(format!(
                    "{}{}: no function markers (3.12 to 3.14), {why}",
                    module::display(&module.path),
                    module.version_suffix()
                ));
                self.notes.append(&mut notes);
                return Ok(None);
            }
            if !self.strict {
                notes.push(format!(
                    "{}{}: none of the requested markers; not traced",
                    module::display(&module.path),
                    module.version_suffix()
                ));
            }
            self.notes.append(&mut notes);
            return Ok(None);
        }
        if self.handler.wants_frame()
            && module.entry_frame() == Some(None)
            && attached.contains(&Marker::FunctionEntry)
        {
            notes.push(format!(
                "{}{}: where function__entry keeps the frame is not recognised in this build, so a generator's creation cannot be told from its first resumption; depths below it are repaired when the enclosing function returns",
                module::display(&module.path),
                module.version_suffix()
            ));
        }
        if let Some((site, note)) = arming_site(&module, index, &self.requested, self.arm_mode)? {
            sites.push(site);
            notes.push(note);
        }
        let first = self.sites.len();
        if first + sites.len() > usize::from(u16::MAX) {
            return Err(PlanError::TooManySites(first + sites.len()));
        }
        for (i, site) in sites.iter_mut().enumerate() {
            site.cookie = (first + i) as u16;
        }
        let code: Vec<SiteCode> = sites
            .iter()
            .filter(|s| s.role == SiteRole::Marker)
            .map(|s| SiteCode {
                cookie: s.cookie,
                marker: s.marker,
                args: s.args.clone(),
            })
            .collect();
        let module_code = codegen::ModuleCode {
            module: codegen::ModuleId {
                index,
                dev: module.dev,
                inode: module.inode,
                version: module.py_version(),
            },
            sites: &code,
            layout: module.py_version().and_then(ObjectLayout::for_version),
            frame: module.entry_frame().flatten(),
        };
        let handler = self.handler.as_ref();
        let program =
            codegen::build_module_program(&format!("pytap_{index}"), &module_code, handler, None)?;
        // The parts of bodies too long for one program, each reached by a
        // tail call from the one before.
        let markers: BTreeSet<Marker> = code.iter().map(|s| s.marker).collect();
        for marker in markers {
            for part in 1..handler.parts(marker, &module_code.module) {
                let program = codegen::build_module_program(
                    &format!("pytap_{index}_{part}"),
                    &module_code,
                    handler,
                    Some((marker, part)),
                )?;
                self.parts.push(PartProgram {
                    slot: codegen::part_slot(index, marker, part),
                    program,
                });
            }
        }
        self.sites.append(&mut sites);
        self.programs.push(program);
        self.targets.push(target);
        self.markers.extend(attached);
        self.notes.append(&mut notes);
        Ok(Some(index))
    }

    /// The index of the target for this module file, if planned.
    pub fn target_of(&self, module: &Module) -> Option<usize> {
        self.targets
            .iter()
            .position(|t| t.module.dev == module.dev && t.module.inode == module.inode)
    }

    /// The sites of one module, in cookie order.
    pub fn sites_of_module(&self, module: usize) -> impl Iterator<Item = &PlannedSite> {
        self.sites.iter().filter(move |s| s.module == module)
    }

    /// The plan as text: sites, maps and each program's disassembly.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (index, (target, program)) in self.targets.iter().zip(&self.programs).enumerate() {
            let pids = if target.pids.is_empty() {
                "every process".to_string()
            } else {
                format!(
                    "pid {}",
                    target
                        .pids
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            let _ = writeln!(
                out,
                "# module {index}: {} ({pids})",
                target.module.path.display()
            );
            for site in self.sites_of_module(index) {
                let role = match &site.role {
                    SiteRole::Marker => String::new(),
                    SiteRole::Arming(how) => format!("  [arming: {how}]"),
                };
                let _ = writeln!(
                    out,
                    "#   cookie {:>3}  {:<26} offset {:#x}  ref_ctr {:#x}{role}",
                    site.cookie,
                    site.marker.name(),
                    site.file_offset,
                    site.ref_ctr_offset
                );
            }
            let _ = writeln!(
                out,
                "# program {} ({} instructions)",
                program.name,
                program.len()
            );
            out.push_str(&disassemble_with(program, &|m| self.maps.name(m)));
            out.push('\n');
            let prefix = format!("{}_", program.name);
            for part in self
                .parts
                .iter()
                .filter(|p| p.program.name.starts_with(&prefix))
            {
                let _ = writeln!(
                    out,
                    "# program {} (part, slot {} of the parts map, {} instructions)",
                    part.program.name,
                    part.slot,
                    part.program.len()
                );
                out.push_str(&disassemble_with(&part.program, &|m| self.maps.name(m)));
                out.push('\n');
            }
        }
        out.push_str(&codegen::task::dump(&self.maps));
        let _ = writeln!(out, "# maps");
        for spec in self.maps.specs() {
            let _ = writeln!(
                out,
                "#   {:<10} {:?} key {} value {} entries {}",
                spec.name, spec.kind, spec.key_size, spec.value_size, spec.max_entries
            );
        }
        out
    }
}

fn absent(module: &Module, marker: Marker) -> PlanError {
    let verdicts = verdict::verdicts(module.py_version(), &module.site_counts());
    let reason = verdicts
        .iter()
        .find(|v| v.marker == marker)
        .map_or("not in this binary", |v| v.reason);
    PlanError::Absent {
        path: module.path.display().to_string(),
        version: module.version_suffix(),
        marker,
        reason,
    }
}

fn planned_site(
    module: &Module,
    index: usize,
    site: &pytap_elf::ProbeSite,
    marker: Marker,
    role: SiteRole,
) -> Result<PlannedSite, PlanError> {
    let bad = |why: String| PlanError::BadSite {
        path: module.path.display().to_string(),
        marker,
        why,
    };
    let file_offset = site.file_offset.ok_or_else(|| {
        bad(format!(
            "its address {:#x} is in no code segment",
            site.address
        ))
    })?;
    let ref_ctr_offset = match site.semaphore {
        None => 0,
        Some(sem) => sem.file_offset.ok_or_else(|| {
            bad(format!(
                "its semaphore {:#x} is in no data segment",
                sem.address
            ))
        })?,
    };
    if ref_ctr_offset > u64::from(u32::MAX) {
        return Err(bad(format!(
            "semaphore offset {ref_ctr_offset:#x} does not fit the kernel's 32 bits"
        )));
    }
    let args = match (&role, &site.arg_specs) {
        (SiteRole::Arming(_), _) => Vec::new(),
        (SiteRole::Marker, Ok(args)) => args.clone(),
        (SiteRole::Marker, Err(e)) => return Err(bad(e.to_string())),
    };
    Ok(PlannedSite {
        cookie: 0,
        module: index,
        marker,
        role,
        file_offset,
        ref_ctr_offset,
        args,
        fallback_offset: None,
    })
}

/// On CPython 3.11, `function__entry` fires for every call only while the
/// `line` semaphore is raised. When entries are wanted and `line` is not,
/// add a site whose only job is to raise it.
fn arming_site(
    module: &Module,
    index: usize,
    markers: &BTreeSet<Marker>,
    mode: ArmMode,
) -> Result<Option<(PlannedSite, String)>, PlanError> {
    let is_311 = module
        .py_version()
        .is_some_and(|v| (v.major, v.minor) == (3, 11));
    if !is_311 || !markers.contains(&Marker::FunctionEntry) || markers.contains(&Marker::Line) {
        return Ok(None);
    }
    let Some(line) = module.sites_of(Marker::Line).into_iter().next() else {
        return Ok(None);
    };
    let line_site = planned_site(
        module,
        index,
        line,
        Marker::Line,
        SiteRole::Arming(String::new()),
    )?;
    let anchor = anchor_offset(module).filter(|_| mode == ArmMode::Anchor);
    let note = |cost: &str| {
        format!(
            "{}: CPython 3.11 reports function entries only while its line marker is on, so pytap turned it on; no line is recorded, {cost}",
            module.path.display()
        )
    };
    Ok(Some(match anchor {
        Some((symbol, offset)) => {
            let how = format!(
                "raises the line semaphore from {symbol}, which runs only if the interpreter dies"
            );
            (
                PlannedSite {
                    file_offset: offset,
                    fallback_offset: Some(line_site.file_offset),
                    role: SiteRole::Arming(how),
                    ..line_site
                },
                note("but the program runs CPython's slower tracing path while pytap is attached"),
            )
        }
        None => {
            let how = "the line site itself (a trap per line)".to_string();
            (
                PlannedSite {
                    role: SiteRole::Arming(how),
                    ..line_site
                },
                note(
                    "but every line costs a uprobe trap while pytap is attached (this build has no better place to switch it on from)",
                ),
            )
        }
    }))
}

fn anchor_offset(module: &Module) -> Option<(&'static str, u64)> {
    module.anchor
}
