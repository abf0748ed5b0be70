//! A module's function probes in a plan: each of the handler's
//! [`FunctionHook`]s found by its symbol in the files the module's
//! processes run (`process::functions`), as uprobes to attach with the
//! module's marker sites, for the same processes.

use std::collections::BTreeMap;

use super::{AttachTarget, PlanError};
use crate::engine::codegen::FunctionHook;
use crate::process::functions::{self, FunctionSite, RunFile};
use crate::process::module;

/// Attach cookies of function sites start here (marker sites' are below):
/// a record's site says which kind of probe sent it.
pub const FUNCTION_COOKIES: u16 = 0x8000;

/// One function uprobe to attach.
#[derive(Debug, Clone)]
pub struct PlannedFunction {
    /// The attach cookie: [`FUNCTION_COOKIES`] + its index in
    /// [`super::Plan::functions`].
    pub cookie: u16,
    /// Index into [`super::Plan::targets`]: the module whose processes it
    /// is attached for.
    pub module: usize,
    /// Index into the handler's [`crate::engine::Handler::functions`].
    pub hook: usize,
    /// Where it is.
    pub site: FunctionSite,
    /// At the function's return.
    pub ret: bool,
}

/// A function hook's program for one module.
#[derive(Debug, Clone)]
pub struct FunctionProgram {
    /// Index into [`super::Plan::targets`].
    pub module: usize,
    /// The hook.
    pub hook: usize,
    /// The program.
    pub program: pytap_ebpf::Program,
}

/// The sites of every hook in the files `target`'s processes run, by hook;
/// a hook found nowhere is an error naming the files searched.
pub(super) fn find(
    hooks: &[FunctionHook],
    target: &AttachTarget,
) -> Result<BTreeMap<usize, Vec<FunctionSite>>, PlanError> {
    let mut out = BTreeMap::new();
    if hooks.is_empty() {
        return Ok(out);
    }
    let pid = target.pids.first().copied();
    let ld_path = match pid {
        Some(pid) => crate::process::proc::environ_var(pid, "LD_LIBRARY_PATH"),
        None => std::env::var("LD_LIBRARY_PATH").ok(),
    };
    let files = functions::run_files(&target.module, pid, ld_path.as_deref());
    for (i, hook) in hooks.iter().enumerate() {
        let chosen: Vec<&RunFile> = files.iter().filter(|f| chosen(hook, f)).collect();
        let sites: Vec<FunctionSite> = chosen
            .iter()
            .flat_map(|f| functions::find_in(f, &hook.function))
            .collect();
        if sites.is_empty() {
            let names: Vec<String> = if chosen.is_empty() {
                files.iter().map(|f| module::display(&f.path)).collect()
            } else {
                chosen.iter().map(|f| module::display(&f.path)).collect()
            };
            return Err(PlanError::NoFunction {
                what: hook.text.clone(),
                why: if chosen.is_empty() {
                    "no file the target runs is the one named".into()
                } else {
                    format!("no function symbol matches `{}`", hook.function)
                },
                searched: names.join(", "),
            });
        }
        out.insert(i, sites);
    }
    Ok(out)
}

/// Whether `file` is one `hook` looks in.
fn chosen(hook: &FunctionHook, file: &RunFile) -> bool {
    // `process("PATH").library("LIB")`: PATH is the program, LIB the file.
    if let Some(path) = hook.path.as_ref().filter(|_| hook.library.is_none()) {
        // The file named, however the process reaches it.
        let same = std::fs::metadata(path).ok().is_some_and(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino()) == file.id
        });
        if !same {
            return false;
        }
    }
    hook.library
        .as_deref()
        .is_none_or(|lib| functions::names_file(lib, file))
}
