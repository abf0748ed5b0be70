//! A module's startup probe in a plan: where its interpreter starts
//! (`Py_InitializeFromConfig`) and the program that tells the handler's
//! stack walk about each of its processes there (`codegen::startup`),
//! planned as one more function hook of the module so that it is attached
//! with the module's other uprobes, for the same processes.

use super::PlanError;
use crate::engine::codegen::startup::{StartupAnchors, build_startup_program};
use crate::engine::codegen::{Handler, ModuleId};
use crate::process::functions::{self, FunctionSite, RunFile};
use crate::process::module::Module;

/// The hook index of a module's startup probe among its function
/// programs (the handler's own hooks are its indices from 0).
pub const STARTUP_HOOK: usize = usize::MAX;

/// The function every interpreter calls as it starts, before any Python
/// code runs (PEP 587's, 3.8 and later).
const STARTS_AT: &str = "Py_InitializeFromConfig";

/// The startup probe of `module` and its program, when `handler`'s bodies
/// walk stacks and `module` defines the interpreter; `None` otherwise (a
/// module that does not is told to the walk from userspace only, as its
/// processes' interpreters are found).
pub(super) fn startup(
    handler: &dyn Handler,
    module: &Module,
    id: &ModuleId,
) -> Result<Option<(FunctionSite, pytap_ebpf::Program)>, PlanError> {
    let Some((procs, slot)) = handler.stack_registry(id) else {
        return Ok(None);
    };
    let [Some(entry), Some(runtime), Some(code_type)] =
        module.dynamic_symbols(&[STARTS_AT, "_PyRuntime", "PyCode_Type"])[..]
    else {
        return Ok(None);
    };
    let file = RunFile {
        path: module.path.clone(),
        open_path: module.open_path.clone(),
        id: (module.dev, module.inode),
    };
    let Some(site) = functions::find_in(&file, STARTS_AT).into_iter().next() else {
        return Ok(None);
    };
    let anchors = StartupAnchors {
        entry,
        runtime,
        code_type,
    };
    let program =
        build_startup_program(&format!("pytap_{}_start", id.index), anchors, procs, slot)?;
    Ok(Some((site, program)))
}
