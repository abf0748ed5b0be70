//! What to attach where, decided before anything is loaded.
//!
//! A [`Plan`] is pure: from the modules, the markers asked for and a
//! handler it picks the sites, assigns each a cookie, adds the sites that
//! only arm another marker (3.11's `function__entry`), and generates one
//! program per module. `--dump-bpf` prints a plan; a
//! [`crate::engine::session::Session`] loads and attaches one.

use std::collections::BTreeSet;
use std::sync::Arc;

use pytap_ebpf::Program;

use super::codegen::{self, CodegenError, Handler, MapTable, SiteCode};
use crate::cpython::Marker;
use crate::cpython::objects::ObjectLayout;
use crate::engine::capture_mode::{CaptureMode, Served};
use crate::process::module::{self, Module};

mod dump;
mod functions;
mod sites;
mod startup;

pub use self::functions::{FUNCTION_COOKIES, FunctionProgram, PlannedFunction};

pub use self::sites::{ArmMode, PlannedSite, SiteRole};
use self::sites::{absent, arming_site, planned_site};

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

/// What a tool asks a plan for, kept for the modules added later.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// The markers to attach.
    pub markers: BTreeSet<Marker>,
    /// Whether the user named the markers: one the only target lacks is
    /// then an error, and one a target of several lacks gets a note.
    pub strict: bool,
    /// How 3.11's `function__entry` gets armed.
    pub arm_mode: ArmMode,
    /// Where function events come from.
    pub capture: CaptureMode,
}

/// A program run on every CPU's clock.
#[derive(Debug, Clone)]
pub struct ProfileProgram {
    /// Firings a second on each CPU.
    pub hz: u64,
    /// The program.
    pub program: Program,
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
    /// Function uprobes (the handler's [`codegen::FunctionHook`]s found in
    /// each module's files); `functions[i].cookie == FUNCTION_COOKIES + i`.
    pub functions: Vec<PlannedFunction>,
    /// Their programs, one per hook and module.
    pub function_programs: Vec<FunctionProgram>,
    /// The programs of the handler's probes on every CPU's clock
    /// ([`codegen::Handler::profiles`]), one per rate; they serve no
    /// module.
    pub profile_programs: Vec<ProfileProgram>,
    /// What pytap did on the user's behalf (arming) or left out and why,
    /// for the user; new ones are added as modules are.
    pub notes: Vec<String>,
    /// Modules whose function events the in-process capture serves
    /// instead of markers.
    pub in_process: Vec<Served>,
    /// Whether a process whose code may have names that are not UTF-8 is
    /// kept from the function and line markers (`crate::engine::hazard`;
    /// off with `--force`).
    pub guard_names: bool,
    request: PlanRequest,
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
    #[error("too many probe sites ({0}); the limit is 32767 markers' and 32767 functions'")]
    TooManySites(usize),
    /// A function probe whose function is in none of the files searched.
    #[error("{what}: {why} (searched {searched})")]
    NoFunction {
        /// The probe as written.
        what: String,
        /// Why nothing was found.
        why: String,
        /// The files searched.
        searched: String,
    },
    /// Program generation failed.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
}

impl Plan {
    /// Plans the request's markers on `targets`, for `handler`'s programs
    /// using `maps`. When `strict` (the user named the markers), a marker
    /// the only target lacks is an error naming the version and the reason;
    /// with several targets, a module that lacks one, or cannot be planned
    /// at all, gets a note and the others go on. Otherwise absent markers
    /// are silently left out.
    pub fn new(
        targets: Vec<AttachTarget>,
        request: PlanRequest,
        maps: MapTable,
        handler: Box<dyn Handler>,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan {
            in_process: Vec::new(),
            guard_names: true,
            targets: Vec::new(),
            sites: Vec::new(),
            maps,
            programs: Vec::new(),
            parts: Vec::new(),
            markers: BTreeSet::new(),
            functions: Vec::new(),
            function_programs: Vec::new(),
            profile_programs: Vec::new(),
            notes: Vec::new(),
            request,
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
        for (hook, hz) in plan.handler.profiles().into_iter().enumerate() {
            let program = codegen::build_profile_program(
                &format!("pytap_p{hook}"),
                plan.handler.as_ref(),
                hook,
            )?;
            plan.profile_programs.push(ProfileProgram { hz, program });
        }
        if plan.markers.is_empty()
            && plan.in_process.is_empty()
            && plan.functions.is_empty()
            && plan.profile_programs.is_empty()
        {
            let names: Vec<_> = plan.request.markers.iter().map(|m| m.name()).collect();
            return Err(PlanError::NothingToAttach(names.join(", ")));
        }
        Ok(plan)
    }

    /// Which path serves function events.
    pub fn capture_mode(&self) -> CaptureMode {
        self.request.capture
    }

    /// The markers the tool asked for (a process that starts later may
    /// arm some no module planned so far has).
    pub fn requested_markers(&self) -> &BTreeSet<Marker> {
        &self.request.markers
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
        let ModuleSites {
            mut sites,
            mut notes,
            attached,
            served,
        } = self.sites_in(&module, index, absent_is_error)?;
        if !served.is_empty() {
            match self
                .in_process
                .iter_mut()
                .find(|s| s.module.dev == module.dev && s.module.inode == module.inode)
            {
                Some(known) => known.markers.extend(served.iter().copied()),
                None => self.in_process.push(Served {
                    module: module.clone(),
                    markers: served.clone(),
                }),
            }
        }
        if self.handler.wants_stacks()
            && !attached.iter().any(|m| {
                !matches!(
                    m,
                    Marker::FunctionEntry | Marker::FunctionReturn | Marker::Line
                )
            })
        {
            notes.push(format!(
                "{}{}: no gc, import or audit marker traced, so no event carries a stack",
                module::display(&module.path),
                module.version_suffix()
            ));
        }
        let hooks = self.handler.functions();
        let found = match functions::find(&hooks, &target) {
            Ok(found) => found,
            Err(e) if absent_is_error => return Err(e),
            Err(e) => {
                notes.push(format!(
                    "{}{}: {e}",
                    module::display(&module.path),
                    module.version_suffix()
                ));
                Default::default()
            }
        };
        if attached.is_empty() && found.is_empty() {
            if served.is_empty() {
                notes.extend(self.untraced_note(&module));
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
        let request = &self.request;
        if let Some((site, note)) = arming_site(&module, index, &request.markers, request.arm_mode)?
        {
            sites.push(site);
            notes.push(note);
        }
        let first = self.sites.len();
        if first + sites.len() >= usize::from(FUNCTION_COOKIES) {
            return Err(PlanError::TooManySites(first + sites.len()));
        }
        for (i, site) in sites.iter_mut().enumerate() {
            site.cookie = (first + i) as u16;
        }
        if self.functions.len() + found.values().map(Vec::len).sum::<usize>()
            > usize::from(u16::MAX - FUNCTION_COOKIES)
        {
            return Err(PlanError::TooManySites(self.functions.len()));
        }
        let (program, starts_at) = self.generate(index, &module, &sites, &found)?;
        for (&hook, sites) in &found {
            for site in sites {
                self.functions.push(PlannedFunction {
                    cookie: FUNCTION_COOKIES + self.functions.len() as u16,
                    module: index,
                    hook,
                    site: site.clone(),
                    ret: hooks[hook].ret,
                });
            }
        }
        if let Some(site) = starts_at {
            self.functions.push(PlannedFunction {
                cookie: FUNCTION_COOKIES + self.functions.len() as u16,
                module: index,
                hook: startup::STARTUP_HOOK,
                site,
                ret: false,
            });
        }
        self.sites.append(&mut sites);
        self.programs.push(program);
        self.targets.push(target);
        self.markers.extend(attached);
        self.notes.append(&mut notes);
        Ok(Some(index))
    }

    /// The sites of the requested markers in `module` (target `index`),
    /// with notes on the markers it lacks; the function markers the
    /// in-process capture serves for this module are left to it.
    fn sites_in(
        &self,
        module: &Module,
        index: usize,
        absent_is_error: bool,
    ) -> Result<ModuleSites, PlanError> {
        let mut found = ModuleSites::default();
        let served = self
            .request
            .capture
            .served_markers(module, &self.request.markers);
        // The agent chosen over function markers the build has (3.11,
        // launched): said once, with why.
        if self.request.capture == CaptureMode::Auto
            && CaptureMode::SERVES.iter().any(|m| served.contains(m))
            && !module.sites_of(Marker::FunctionEntry).is_empty()
        {
            found.notes.push(format!(
                "{}{}: function events from pytap's agent inside the interpreter (a compiled \
                 profile function), which costs less than this version's function markers: they \
                 fire only with the eval loop's tracing path armed; `--capture markers` keeps the \
                 markers",
                module::display(&module.path),
                module.version_suffix()
            ));
        }
        for &marker in &self.request.markers {
            if served.contains(&marker) {
                found.served.insert(marker);
                continue;
            }
            let sites = module.sites_of(marker);
            if sites.is_empty() {
                if self.request.strict && absent_is_error {
                    return Err(absent(module, marker));
                }
                if self.request.strict {
                    found.notes.push(absent(module, marker).to_string());
                }
                continue;
            }
            found.attached.insert(marker);
            for site in sites {
                found
                    .sites
                    .push(planned_site(module, index, site, marker, SiteRole::Marker)?);
            }
        }
        Ok(found)
    }

    /// Why a module with none of the requested markers is not traced, when
    /// the user should hear it: its function markers are gone (3.12 to
    /// 3.14) and the agent was not given to it, or the markers were not
    /// named (named ones have their notes already).
    fn untraced_note(&self, module: &Module) -> Option<String> {
        let minor = module.py_version().map(|v| v.minor_version());
        let wants_calls = self
            .request
            .markers
            .iter()
            .any(|m| CaptureMode::SERVES.contains(m));
        if wants_calls && minor.is_some_and(|v| ((3, 12)..=(3, 14)).contains(&v)) {
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
            return Some(format!(
                "{}{}: no function markers (3.12 to 3.14), {why}",
                module::display(&module.path),
                module.version_suffix()
            ));
        }
        (!self.request.strict).then(|| {
            format!(
                "{}{}: none of the requested markers; not traced",
                module::display(&module.path),
                module.version_suffix()
            )
        })
    }

    /// Generates target `index`'s program for its `sites` (cookies
    /// assigned), and the parts of the bodies too long for one program,
    /// each reached by a tail call from the one before (added to
    /// [`Plan::parts`]).
    fn generate(
        &mut self,
        index: usize,
        module: &Module,
        sites: &[PlannedSite],
        functions: &std::collections::BTreeMap<usize, Vec<crate::process::functions::FunctionSite>>,
    ) -> Result<(Program, Option<crate::process::functions::FunctionSite>), PlanError> {
        let code: Vec<SiteCode> = sites
            .iter()
            .filter(|s| s.role == SiteRole::Marker)
            .map(|s| SiteCode {
                cookie: s.cookie,
                marker: s.marker,
                args: s.args.clone(),
            })
            .collect();
        // The walker is built with the layout the file says; a process
        // whose own table differs is not told to the walk.
        let stack_layout = match self.handler.wants_stacks() {
            true => match crate::process::python::file_layout(module) {
                Ok(layout) => Some(layout),
                Err(why) => {
                    self.notes.push(format!(
                        "{}{}: its events carry no stack: {why}",
                        module::display(&module.path),
                        module.version_suffix()
                    ));
                    None
                }
            },
            false => None,
        };
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
            stack: stack_layout,
        };
        let handler = self.handler.as_ref();
        let program =
            codegen::build_module_program(&format!("pytap_{index}"), &module_code, handler, None)?;
        for &hook in functions.keys() {
            let program = codegen::build_function_program(
                &format!("pytap_{index}_f{hook}"),
                &module_code,
                handler,
                hook,
            )?;
            self.function_programs.push(FunctionProgram {
                module: index,
                hook,
                program,
            });
        }
        // Where the module's interpreters start, the walk is told about
        // their processes (in the kernel, before any of their Python runs).
        let starts_at = match startup::startup(handler, module, &module_code.module)? {
            Some((site, program)) => {
                self.function_programs.push(FunctionProgram {
                    module: index,
                    hook: startup::STARTUP_HOOK,
                    program,
                });
                Some(site)
            }
            None => None,
        };
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
        Ok((program, starts_at))
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
}

/// What [`Plan::sites_in`] finds in a module.
#[derive(Debug, Default)]
struct ModuleSites {
    /// The requested markers' sites (cookies not assigned yet).
    sites: Vec<PlannedSite>,
    /// Notes on the requested markers it lacks.
    notes: Vec<String>,
    /// The markers it has sites for.
    attached: BTreeSet<Marker>,
    /// The requested markers the in-process capture serves for it.
    served: BTreeSet<Marker>,
}
