//! One module's sites in a plan: each marker site checked and turned into
//! a uprobe to attach ([`PlannedSite`]), and on CPython 3.11 the site that
//! only arms `function__entry` by raising the line semaphore.

use std::collections::BTreeSet;

use pytap_elf::ArgSpec;

use super::PlanError;
use crate::cpython::{Marker, verdict};
use crate::process::module::Module;

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

/// The error for a marker `module` lacks, with the verdict table's reason.
pub(super) fn absent(module: &Module, marker: Marker) -> PlanError {
    let verdicts = verdict::verdicts(module.py_version(), &module.site_counts());
    let reason = if module.has_python_markers() {
        verdicts
            .iter()
            .find(|v| v.marker == marker)
            .map_or("not in this binary", |v| v.reason)
    } else {
        "this build has no markers (it was configured without --with-dtrace)"
    };
    PlanError::Absent {
        path: module.path.display().to_string(),
        version: module.version_suffix(),
        marker,
        reason,
    }
}

/// A marker site of `module` (target `index`) as a uprobe to attach,
/// refused when the kernel could not take its offsets.
pub(super) fn planned_site(
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
pub(super) fn arming_site(
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
