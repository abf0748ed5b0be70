//! Attaching loaded programs to a module's marker sites: one uprobe_multi
//! link per module and process, or a perf uprobe and link per site; and
//! the arming anchors' fallback to the line site when the anchor
//! instruction cannot take a uprobe.

use std::path::Path;

use pytap_sys::SysError;
use pytap_sys::bpf::{Link, Program as LoadedProgram, UprobeSites};
use pytap_sys::perf::PerfEvent;

use super::AttachMode;
use super::error::{SessionError, privilege_or};
use crate::engine::plan::{Plan, PlannedSite};

/// The probes of one module for one process (or every process).
#[derive(Debug)]
pub(super) struct Attachment {
    pub(super) target: usize,
    pub(super) pid: Option<u32>,
    // Dropping them detaches: the kernel removes the uprobes and lowers
    // the semaphores they raised.
    pub(super) _links: Vec<Link>,
    pub(super) _perf_events: Vec<PerfEvent>,
}

/// Attaches every target of the plan, for each of its processes (or every
/// process). With several targets, one that cannot be attached gets a
/// note in the plan and the others go on; a missing privilege always
/// stops, since no other target would fare better.
pub(super) fn attach_planned(
    plan: &mut Plan,
    programs: Programs<'_>,
    mode: AttachMode,
) -> Result<Vec<Attachment>, SessionError> {
    let several = plan.targets.len() > 1;
    let mut attachments = Vec::new();
    for index in 0..plan.targets.len() {
        let pids: Vec<Option<u32>> = if plan.targets[index].pids.is_empty() {
            vec![None]
        } else {
            plan.targets[index].pids.iter().copied().map(Some).collect()
        };
        for pid in pids {
            match attach_target(plan, programs, mode, index, pid) {
                Ok(a) => attachments.push(a),
                Err(e @ SessionError::Privilege { .. }) => return Err(e),
                Err(e) if several => plan.notes.push(format!("not traced: {e}")),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(attachments)
}

/// The loaded programs: the modules' (in target order) and the function
/// hooks' (in [`Plan::function_programs`]' order).
#[derive(Debug, Clone, Copy)]
pub(super) struct Programs<'a> {
    pub(super) modules: &'a [LoadedProgram],
    pub(super) functions: &'a [LoadedProgram],
}

/// Attaches target `index`'s program to its sites, and its function
/// programs to their functions, for `pid` or (None) every process mapping
/// the module.
pub(super) fn attach_target(
    plan: &Plan,
    programs: Programs<'_>,
    mode: AttachMode,
    index: usize,
    pid: Option<u32>,
) -> Result<Attachment, SessionError> {
    let target = &plan.targets[index];
    let program = &programs.modules[index];
    let sites: Vec<&PlannedSite> = plan.sites_of_module(index).collect();
    let path = &target.module.open_path;
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| {
            privilege_or("attaching uprobes", source, |source| SessionError::Attach {
                path,
                source,
            })
        }
    };
    let (mut links, mut perf_events) = match (mode, sites.is_empty()) {
        // A module probed only at functions has no marker site.
        (_, true) => Ok((Vec::new(), Vec::new())),
        (AttachMode::UprobeMulti, false) => {
            attach_multi(program, path, &sites, pid).map(|l| (vec![l], Vec::new()))
        }
        (AttachMode::PerfEvent, false) => attach_perf(program, path, &sites, pid),
    }
    .map_err(failed(&target.module.path))?;
    for (f, loaded) in plan.function_programs.iter().zip(programs.functions) {
        if f.module != index {
            continue;
        }
        // One link per file of the hook's sites.
        let mut by_file: Vec<(&Path, Vec<&crate::engine::plan::PlannedFunction>)> = Vec::new();
        for site in plan
            .functions
            .iter()
            .filter(|s| s.module == index && s.hook == f.hook)
        {
            let file = site.site.file.open_path.as_path();
            match by_file.iter_mut().find(|(p, _)| *p == file) {
                Some((_, list)) => list.push(site),
                None => by_file.push((file, vec![site])),
            }
        }
        for (file, sites) in by_file {
            let (l, e) = attach_functions(loaded, file, &sites, pid, mode)
                .map_err(failed(&sites[0].site.file.path))?;
            links.extend(l);
            perf_events.extend(e);
        }
    }
    Ok(Attachment {
        target: index,
        pid,
        _links: links,
        _perf_events: perf_events,
    })
}

/// A function hook's uprobes (or uretprobes) in one file: one
/// uprobe_multi link, or a perf uprobe and link per site.
fn attach_functions(
    program: &LoadedProgram,
    path: &Path,
    sites: &[&crate::engine::plan::PlannedFunction],
    pid: Option<u32>,
    mode: AttachMode,
) -> Result<(Vec<Link>, Vec<PerfEvent>), SysError> {
    let ret = sites.iter().any(|s| s.ret);
    let offsets: Vec<u64> = sites.iter().map(|s| s.site.file_offset).collect();
    let cookies: Vec<u64> = sites.iter().map(|s| u64::from(s.cookie)).collect();
    match mode {
        AttachMode::UprobeMulti => {
            let none = vec![0; offsets.len()];
            let at = UprobeSites {
                offsets: &offsets,
                ref_ctr_offsets: &none,
                cookies: &cookies,
            };
            Ok((
                vec![Link::uprobe_multi(program, path, at, pid, ret)?],
                Vec::new(),
            ))
        }
        AttachMode::PerfEvent => {
            let (mut links, mut events) = (Vec::new(), Vec::new());
            for (offset, cookie) in offsets.iter().zip(&cookies) {
                let event = PerfEvent::uprobe(path, *offset, 0, pid, ret)?;
                links.push(Link::perf_event(program, &event, *cookie)?);
                events.push(event);
            }
            Ok((links, events))
        }
    }
}

/// One uprobe_multi link for all of a module's sites.
fn attach_multi(
    program: &LoadedProgram,
    path: &Path,
    sites: &[&PlannedSite],
    pid: Option<u32>,
) -> Result<Link, SysError> {
    let ref_ctrs: Vec<u64> = sites.iter().map(|s| s.ref_ctr_offset).collect();
    let cookies: Vec<u64> = sites.iter().map(|s| u64::from(s.cookie)).collect();
    let offsets: Vec<u64> = sites.iter().map(|s| s.file_offset).collect();
    let at = UprobeSites {
        offsets: &offsets,
        ref_ctr_offsets: &ref_ctrs,
        cookies: &cookies,
    };
    match Link::uprobe_multi(program, path, at, pid, false) {
        // An arming anchor can collide with someone else's uprobe on the same
        // instruction (with another semaphore): arm on the line site instead.
        Err(_) if sites.iter().any(|s| s.fallback_offset.is_some()) => {
            let offsets: Vec<u64> = sites
                .iter()
                .map(|s| s.fallback_offset.unwrap_or(s.file_offset))
                .collect();
            let at = UprobeSites {
                offsets: &offsets,
                ..at
            };
            Link::uprobe_multi(program, path, at, pid, false)
        }
        other => other,
    }
}

/// A perf uprobe and a perf link per site.
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
