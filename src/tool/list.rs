//! `pytap list`: every marker site of a binary, library or process.
//!
//! The columns are what `readelf -n` prints for `.note.stapsdt` (pc, base,
//! semaphore, argument spec) plus what a tracer needs and readelf does not
//! give: the file offsets a uprobe and its semaphore attach at, computed
//! through the program headers of the very file, and for a live process the
//! semaphore's current value (non-zero while some tracer has the marker on).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cpython::marker::PROVIDER;
use crate::output::{Align, Table, hex};
use crate::process::module::Module;
use crate::process::proc::Process;
use crate::process::{self, PythonProcess};

/// What to list.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// Files to read.
    pub paths: Vec<PathBuf>,
    /// A process whose mapped modules to read.
    pub pid: Option<u32>,
    /// Also list markers of providers other than `python`.
    pub all_providers: bool,
}

/// One module in `pytap list --json` (schema in docs/output.md).
#[derive(Debug, Serialize)]
pub struct ListedModule {
    /// Path as given or as the process sees it.
    pub path: String,
    /// Host path pytap read and would attach to.
    pub open_path: String,
    /// The process, for `-p`.
    pub pid: Option<u32>,
    /// `EXEC` or `DYN`.
    pub elf_type: &'static str,
    /// `executable` or `library`.
    pub role: &'static str,
    /// CPython version, when known.
    pub cpython: Option<String>,
    /// Every site.
    pub sites: Vec<ListedSite>,
}

/// One marker site in `pytap list --json`.
#[derive(Debug, Serialize)]
pub struct ListedSite {
    /// Provider (`python`).
    pub provider: String,
    /// Marker name as in the note.
    pub name: String,
    /// 1-based index of this site among the sites of the same marker.
    pub site: usize,
    /// Number of sites of this marker in the module.
    pub sites: usize,
    /// Location as written in the note.
    pub pc: u64,
    /// `.stapsdt.base` as written in the note.
    pub base: u64,
    /// File offset of the probe (what a uprobe attaches at); null if not in a code segment.
    pub file_offset: Option<u64>,
    /// The semaphore, if the site has one.
    pub semaphore: Option<ListedSemaphore>,
    /// Argument spec as written in the note.
    pub args: String,
}

/// A semaphore in `pytap list --json`.
#[derive(Debug, Serialize)]
pub struct ListedSemaphore {
    /// Address as written in the note.
    pub address: u64,
    /// File offset (the uprobe `ref_ctr_offset`).
    pub file_offset: Option<u64>,
    /// Current value in the process (`-p` only): how many tracers have the marker on.
    pub value: Option<u16>,
}

/// Runs `pytap list`, writing text or JSON to `out`.
pub fn run(request: &ListRequest, json: bool, out: &mut dyn Write) -> Result<()> {
    let mut listed = Vec::new();
    for path in &request.paths {
        let module = if request.all_providers {
            let m = Module::open(path, path)?;
            if m.all_sites.is_empty() {
                process::resolve_path(
                    path,
                    "/".as_ref(),
                    std::env::var("LD_LIBRARY_PATH").ok().as_deref(),
                )?
            } else {
                m
            }
        } else {
            process::resolve_path(
                path,
                "/".as_ref(),
                std::env::var("LD_LIBRARY_PATH").ok().as_deref(),
            )?
        };
        listed.push(describe(&module, None, request.all_providers));
    }
    if let Some(pid) = request.pid {
        let PythonProcess { process, modules } = process::discover_process(pid)?;
        for module in &modules {
            listed.push(describe(module, Some(&process), request.all_providers));
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "modules": listed }))?;
        writeln!(out)?;
    } else {
        for (i, module) in listed.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write_text(module, out)?;
        }
    }
    Ok(())
}

fn describe(module: &Module, process: Option<&Process>, all_providers: bool) -> ListedModule {
    let sites: Vec<_> = module
        .all_sites
        .iter()
        .filter(|s| all_providers || s.provider == PROVIDER)
        .collect();
    let listed_sites = sites
        .iter()
        .map(|site| {
            let same: Vec<_> = sites
                .iter()
                .filter(|s| s.provider == site.provider && s.name == site.name)
                .collect();
            let index = same
                .iter()
                .position(|s| std::ptr::eq(**s, *site))
                .unwrap_or(0)
                + 1;
            ListedSite {
                provider: site.provider.clone(),
                name: site.name.clone(),
                site: index,
                sites: same.len(),
                pc: site.pc,
                base: site.base,
                file_offset: site.file_offset,
                semaphore: site.semaphore.map(|sem| ListedSemaphore {
                    address: sem.note_address,
                    file_offset: sem.file_offset,
                    value: process.and_then(|p| read_semaphore(p, module, sem.file_offset?)),
                }),
                args: site.args.clone(),
            }
        })
        .collect();
    ListedModule {
        path: module.path.display().to_string(),
        open_path: module.open_path.display().to_string(),
        pid: process.map(|p| p.pid),
        elf_type: module.kind.as_str(),
        role: module.role(),
        cpython: module.py_version().map(|v| v.to_string()),
        sites: listed_sites,
    }
}

/// Reads a semaphore's live value from the process's memory.
pub fn read_semaphore(process: &Process, module: &Module, file_offset: u64) -> Option<u16> {
    let dev = format_dev(module.dev);
    let address = process.address_of_file_offset(&dev, module.inode, file_offset)?;
    let mut buf = [0u8; 2];
    process.read_memory(address, &mut buf).ok()?;
    Some(u16::from_le_bytes(buf))
}

/// `st_dev` as `/proc/PID/maps` prints it: `major:minor` in hex.
pub fn format_dev(dev: u64) -> String {
    // glibc's gnu_dev_major/minor encoding.
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x00ff);
    format!("{major:02x}:{minor:02x}")
}

fn write_text(module: &ListedModule, out: &mut dyn Write) -> Result<()> {
    let who = match module.pid {
        Some(pid) => format!("pid {pid}: "),
        None => String::new(),
    };
    let version = module
        .cpython
        .as_deref()
        .map(|v| format!(", CPython {v}"))
        .unwrap_or_default();
    let markers: std::collections::BTreeSet<_> = module
        .sites
        .iter()
        .map(|s| (&s.provider, &s.name))
        .collect();
    writeln!(
        out,
        "{who}{} ({}, ELF {}{version}): {} markers at {} sites",
        module.path,
        module.role,
        module.elf_type,
        markers.len(),
        module.sites.len()
    )?;
    let live = module.pid.is_some();
    let mut columns = vec![
        ("MARKER", Align::Left),
        ("SITE", Align::Right),
        ("PC", Align::Right),
        ("OFFSET", Align::Right),
        ("SEMAPHORE", Align::Right),
        ("SEM.OFFSET", Align::Right),
    ];
    if live {
        columns.push(("SEM.VALUE", Align::Right));
    }
    columns.push(("ARGS", Align::Left));
    let mut table = Table::new(&columns);
    let dash = || "-".to_string();
    for site in &module.sites {
        let mut row = vec![
            format!("{}:{}", site.provider, site.name),
            format!("{}/{}", site.site, site.sites),
            hex(site.pc),
            site.file_offset.map(hex).unwrap_or_else(dash),
            site.semaphore
                .as_ref()
                .map(|s| hex(s.address))
                .unwrap_or_else(dash),
            site.semaphore
                .as_ref()
                .and_then(|s| s.file_offset)
                .map(hex)
                .unwrap_or_else(dash),
        ];
        if live {
            row.push(
                site.semaphore
                    .as_ref()
                    .and_then(|s| s.value)
                    .map(|v| v.to_string())
                    .unwrap_or_else(dash),
            );
        }
        row.push(site.args.clone());
        table.row(row);
    }
    out.write_all(table.render().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_print_like_proc_maps() {
        // makedev(0xfe, 0x01) and makedev(0x103, 0x1234).
        assert_eq!(format_dev(0xfe01), "fe:01");
        let dev = ((0x1234u64 & 0xff) | ((0x103u64 & 0xfff) << 8)) | ((0x1234u64 & !0xff) << 12);
        assert_eq!(format_dev(dev), "103:1234");
    }
}
