//! `pytap info --scan`: which CPython interpreters and libpythons on this
//! machine carry markers, and what each can give. The first thing a new
//! user needs to know: pyenv, conda and python.org builds have none, the
//! distributions' do.
//!
//! Candidates are the `python3*` files in `PATH`, `/usr/bin`,
//! `/usr/local/bin` and pyenv's versions, and the `libpython3*.so*` files
//! in the usual library directories, each file once (symlinks and hard
//! links are one file, shown by its real name).
//! Scripts (pyenv's shims, `python3-config`) and other non-ELF files are
//! left out.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::cpython::MarkerClass;
use crate::cpython::verdict::{self, MarkerVerdict};
use crate::error::TargetError;
use crate::output::{Align, Table};
use crate::process;

/// Directories searched for `python3*` besides `PATH`.
const BIN_DIRS: [&str; 2] = ["/usr/bin", "/usr/local/bin"];
/// Directories searched for `libpython3*.so*`.
const LIB_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/lib64",
];

/// One file found, in `pytap info --scan --json` (schema in docs/output.md).
#[derive(Debug, Serialize)]
pub struct Found {
    /// The file.
    pub path: String,
    /// The file that carries its markers (itself, or the libpython it
    /// links), when it has any.
    pub markers_in: Option<String>,
    /// CPython version, when known.
    pub cpython: Option<String>,
    /// Verdict for each of CPython's markers; empty without markers.
    pub markers: Vec<MarkerVerdict>,
    /// Why it has no markers, when it has none.
    pub why: Option<String>,
    /// Whether `pytap dump` and `pytap profile` can read its stacks.
    pub stacks: bool,
    /// Why they cannot, when they cannot.
    pub stacks_why: Option<String>,
}

/// The candidate files, each once: `python3*` executables in `PATH` and
/// the bin directories, `libpython3*.so*` in the library directories.
pub fn candidates() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // pyenv's `python3` on PATH is a shim script: its builds are here.
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    let pyenv_bins: Vec<PathBuf> = pyenv
        .and_then(|root| std::fs::read_dir(root.join("versions")).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .collect();
    let bins = std::env::split_paths(&path)
        .chain(BIN_DIRS.iter().map(PathBuf::from))
        .chain(pyenv_bins);
    let mut found = Vec::new();
    for dir in bins {
        found.extend(matching(&dir, |name| {
            name.starts_with("python3") && !name.contains("config")
        }));
    }
    for dir in LIB_DIRS {
        found.extend(matching(Path::new(dir), |name| {
            name.starts_with("libpython3") && name.contains(".so")
        }));
    }
    // Each file once, by its real name (`python3` is a link to `python3.11`).
    let mut seen = BTreeSet::new();
    found
        .into_iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && seen.insert((m.dev(), m.ino())))
        })
        .collect()
}

fn matching(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths
}

/// What one file is, or `None` when it is not an interpreter at all.
fn describe(path: &Path) -> Option<Found> {
    let mut found = describe_markers(path)?;
    match crate::process::python::stacks_readable(path) {
        Ok(_) => found.stacks = true,
        Err(why) => found.stacks_why = Some(why),
    }
    Some(found)
}

/// What one file's markers can give.
fn describe_markers(path: &Path) -> Option<Found> {
    let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
    let shown = path.display().to_string();
    match process::resolve_path(path, "/".as_ref(), ld_path.as_deref()) {
        Ok(module) => Some(Found {
            path: shown,
            markers_in: Some(module.path.display().to_string()),
            cpython: module.py_version().map(|v| v.to_string()),
            markers: verdict::verdicts(module.py_version(), &module.site_counts()),
            why: None,
            stacks: false,
            stacks_why: None,
        }),
        Err(TargetError::NoMarkers { version, .. }) => Some(Found {
            path: shown,
            markers_in: None,
            cpython: Some(version.trim().to_string()).filter(|v| !v.is_empty()),
            markers: Vec::new(),
            why: Some("built without --with-dtrace".into()),
            stacks: false,
            stacks_why: None,
        }),
        Err(TargetError::LibpythonNotFound { needed, .. }) => Some(Found {
            path: shown,
            markers_in: None,
            cpython: None,
            markers: Vec::new(),
            why: Some(format!("links {needed}, which is not in its library path")),
            stacks: false,
            stacks_why: None,
        }),
        Err(_) => None,
    }
}

/// What a marker class can give, in a word: the verdict of its first
/// marker (`function__entry` for calls: on 3.11 it needs arming while
/// returns fire anyway), `-` when the file has no markers at all.
fn class_word(found: &Found, class: MarkerClass) -> &'static str {
    if found.markers.is_empty() {
        return "-";
    }
    found
        .markers
        .iter()
        .find(|v| v.marker.class() == class)
        .map_or("-", |v| v.support.word())
}

/// Runs `pytap info --scan`.
pub fn run(json: bool, out: &mut dyn Write) -> Result<()> {
    let found: Vec<Found> = candidates().iter().filter_map(|p| describe(p)).collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "interpreters": found }))?;
        writeln!(out)?;
        return Ok(());
    }
    if found.is_empty() {
        writeln!(
            out,
            "no CPython found in PATH, {} or the library directories",
            BIN_DIRS.join(", ")
        )?;
        return Ok(());
    }
    let mut table = Table::new(&[
        ("PATH", Align::Left),
        ("CPYTHON", Align::Left),
        ("CALLS", Align::Left),
        ("GC", Align::Left),
        ("IMPORTS", Align::Left),
        ("AUDIT", Align::Left),
        ("STACKS", Align::Left),
        ("NOTE", Align::Left),
    ]);
    for f in &found {
        let note = match (&f.why, &f.markers_in) {
            (Some(why), _) => format!("no markers: {why}"),
            (None, Some(in_file)) if *in_file != f.path => format!("markers in {in_file}"),
            _ => String::new(),
        };
        table.row(vec![
            f.path.clone(),
            f.cpython.clone().unwrap_or_else(|| "?".into()),
            class_word(f, MarkerClass::Function).into(),
            class_word(f, MarkerClass::Gc).into(),
            class_word(f, MarkerClass::Import).into(),
            class_word(f, MarkerClass::Audit).into(),
            if f.stacks { "yes" } else { "no" }.into(),
            match &f.stacks_why {
                Some(why) if note.is_empty() => format!("stacks: {why}"),
                Some(why) => format!("{note}; stacks: {why}"),
                None => note,
            },
        ]);
    }
    out.write_all(table.render().as_bytes())?;
    writeln!(
        out,
        "\nCALLS (flow, top, calls): fires; armed: pytap arms it (3.11); unbalanced: pytap repairs it (3.15+); \
         absent: none on this version (3.12-3.14). STACKS (dump, profile): read from \
         memory, with or without markers. `pytap info PATH` tells more."
    )?;
    Ok(())
}
