//! `pytap info`: which CPython a target is and what its markers will really do.
//!
//! The version is read from the file (never by running it); the verdicts
//! come from [`crate::cpython::verdict`], which records what each marker
//! does on each version and what pytap does about it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cpython::Marker;
use crate::cpython::verdict::{self, MarkerVerdict};
use crate::output::{Align, Table};
use crate::process::module::Module;
use crate::process::proc::Process;
use crate::process::{self, PythonProcess};

mod scan;

/// What to describe: a path or a process.
#[derive(Debug, Clone)]
pub enum InfoTarget {
    /// A binary or library.
    Path(PathBuf),
    /// A running process.
    Pid(u32),
    /// Every CPython installed on this machine (`--scan`).
    Scan,
}

/// One module in `pytap info --json` (schema in docs/output.md).
#[derive(Debug, Serialize)]
pub struct ModuleInfo {
    /// Path as given or as the process sees it.
    pub path: String,
    /// The process, for `-p`.
    pub pid: Option<u32>,
    /// The pid inside the process's own pid namespace, when different.
    pub ns_pid: Option<u32>,
    /// `executable` (markers in the interpreter binary) or `library` (in libpython).
    pub role: &'static str,
    /// `EXEC` or `DYN`.
    pub elf_type: &'static str,
    /// CPython version, when known.
    pub cpython: Option<String>,
    /// Where the version was read from.
    pub version_source: Option<&'static str>,
    /// GNU build ID.
    pub build_id: Option<String>,
    /// Versions whose `function__entry` fires at generator creation
    /// (3.15+): the register holding the frame at that marker (`%r13`), or
    /// `null` when pytap does not recognise it in this build. Absent for
    /// other versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_frame_register: Option<Option<&'static str>>,
    /// Which path gives function events: `markers`, `in-process` (pytap's
    /// agent in a launched interpreter, CPython 3.12–3.14), or `none`.
    pub function_events: &'static str,
    /// Whether a script path or working directory that is not UTF-8 makes
    /// this CPython fail once function or line markers are armed (pytap
    /// then does not arm them without `--force`).
    pub fails_on_non_utf8_paths: bool,
    /// Verdict for each of CPython's eight markers.
    pub markers: Vec<MarkerVerdict>,
}

/// Runs `pytap info`.
pub fn run(target: &InfoTarget, json: bool, out: &mut dyn Write) -> Result<()> {
    let infos: Vec<ModuleInfo> = match target {
        InfoTarget::Scan => return scan::run(json, out),
        InfoTarget::Path(path) => {
            let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
            let module = process::resolve_path(path, "/".as_ref(), ld_path.as_deref())?;
            vec![describe(&module, None)]
        }
        InfoTarget::Pid(pid) => {
            let PythonProcess { process, modules } = process::discover_process(*pid)?;
            modules
                .iter()
                .map(|m| describe(m, Some(&process)))
                .collect()
        }
    };
    if json {
        let value = match &infos[..] {
            [one] => serde_json::to_value(one)?,
            many => serde_json::json!({ "modules": many }),
        };
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    for (i, info) in infos.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write_text(info, out)?;
    }
    Ok(())
}

fn describe(module: &Module, process: Option<&Process>) -> ModuleInfo {
    ModuleInfo {
        path: module.path.display().to_string(),
        pid: process.map(|p| p.pid),
        ns_pid: process.and_then(|p| p.ns_pid),
        role: module.role(),
        elf_type: module.kind.as_str(),
        cpython: module.py_version().map(|v| v.to_string()),
        version_source: module.version.map(|(_, s)| s.describe()),
        build_id: module.build_id.clone(),
        entry_frame_register: module
            .entry_frame()
            .map(|frame| frame.map(|f| f.register.name(8))),
        function_events: function_events(module),
        fails_on_non_utf8_paths: verdict::fails_on_non_utf8_paths(module.py_version())
            && [Marker::FunctionEntry, Marker::FunctionReturn, Marker::Line]
                .iter()
                .any(|m| !module.sites_of(*m).is_empty()),
        markers: verdict::verdicts(module.py_version(), &module.site_counts()),
    }
}

/// Where this module's function events come from by default.
fn function_events(module: &Module) -> &'static str {
    if crate::engine::capture_mode::CaptureMode::Auto.serves_module(module) {
        "in-process"
    } else if !module.sites_of(Marker::FunctionEntry).is_empty() {
        "markers"
    } else {
        "none"
    }
}

fn write_text(info: &ModuleInfo, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{}", info.path)?;
    if let Some(pid) = info.pid {
        match info.ns_pid {
            Some(ns) => writeln!(
                out,
                "  process     {pid} (pid {ns} in its own pid namespace)"
            )?,
            None => writeln!(out, "  process     {pid}")?,
        }
    }
    match (&info.cpython, info.version_source) {
        (Some(v), Some(src)) => writeln!(out, "  CPython     {v} (read from the {src})")?,
        _ => writeln!(out, "  CPython     unknown version")?,
    }
    let place = match info.role {
        "executable" => "the interpreter executable",
        _ => "a shared library (libpython)",
    };
    writeln!(out, "  markers in  {place}, ELF {}", info.elf_type)?;
    if let Some(id) = &info.build_id {
        writeln!(out, "  build id    {id}")?;
    }
    match info.entry_frame_register {
        Some(Some(reg)) => writeln!(
            out,
            "  frames      function__entry keeps the frame in %{reg}: flow tells generator creations from runs"
        )?,
        Some(None) => writeln!(
            out,
            "  frames      not recognised at function__entry: flow cannot tell generator creations from runs"
        )?,
        None => {}
    }
    let monitoring = info
        .cpython
        .as_deref()
        .and_then(|v| v.split('.').nth(1)?.parse::<u32>().ok())
        .is_some_and(|minor| minor >= 12);
    let how = if monitoring {
        "sys.monitoring"
    } else {
        "a compiled profile function"
    };
    let calls = match info.function_events {
        "in-process" => format!(
            "from pytap's agent inside the interpreter ({how}) when pytap launches it; a running \
             process (-p) keeps the markers where it has them"
        ),
        "markers" => format!(
            "from the markers (nothing runs in the process); --capture in-process uses the agent \
             ({how})"
        ),
        _ => "none: no function markers and no sys.monitoring".to_string(),
    };
    writeln!(out, "  calls       {calls}")?;
    if info.fails_on_non_utf8_paths {
        writeln!(out, "  caution     {}", verdict::NON_UTF8_PATHS)?;
    }
    writeln!(out)?;
    let mut table = Table::new(&[
        ("MARKER", Align::Left),
        ("SITES", Align::Right),
        ("VERDICT", Align::Left),
        ("WHY", Align::Left),
    ]);
    for v in &info.markers {
        table.row(vec![
            v.marker.name().to_string(),
            v.sites.to_string(),
            v.support.word().to_string(),
            v.reason.to_string(),
        ]);
        if let Some(fix) = v.workaround {
            table.row(vec![
                String::new(),
                String::new(),
                String::new(),
                format!("-> {fix}"),
            ]);
        }
    }
    out.write_all(table.render().as_bytes())?;
    Ok(())
}
