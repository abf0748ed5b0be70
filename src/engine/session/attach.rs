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
    programs: &[LoadedProgram],
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

/// Attaches target `index`'s program to its sites, for `pid` or (None)
/// every process mapping the module.
pub(super) fn attach_target(
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
