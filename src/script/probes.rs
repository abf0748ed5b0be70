//! D's probe identity: the numbering `pytap dtrace -l` lists ([`rows`]:
//! dtrace's own three, then every marker site in module and note order),
//! and at run time the site a record came from (its attach cookie) named
//! by it, id, module and C function (`probemod`, `probefunc` and the
//! firing line's ID), read over the session's modules once, when a
//! program first asks. The listing and the run share this module so that
//! the IDs a user reads in `-l` are the ones a firing line prints.

use std::collections::HashMap;

use anyhow::Result;
use pytap_script::interp::ProbeInfo;

use crate::cpython::marker::PROVIDER;
use crate::engine::plan::{FUNCTION_COOKIES, Plan};
use crate::process::module::Module;

/// One listed probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The probe id.
    pub id: u32,
    /// `dtrace` or `pythonPID`.
    pub provider: String,
    /// The file's base name.
    pub module: String,
    /// The C function.
    pub function: String,
    /// `function-entry`.
    pub name: String,
}

/// Sites already named, by cookie.
#[derive(Debug, Default)]
pub struct ProbeTable {
    by_cookie: HashMap<u16, ProbeInfo>,
    /// Rows of the modules seen so far, by (module index, file offset).
    rows: HashMap<(usize, u64), ProbeInfo>,
    /// How many of the plan's modules `rows` covers.
    modules: usize,
}

impl ProbeTable {
    /// Reads the plan's modules now (their symbols are read from the
    /// files as the traced processes see them, which an exited process no
    /// longer shows).
    pub fn prime(&mut self, plan: &Plan) {
        if self.modules < plan.targets.len() {
            self.read(plan);
        }
    }

    /// The probe of `cookie` in `plan` (nothing known: id 0, empty names).
    pub fn info(&mut self, plan: &Plan, cookie: u16) -> ProbeInfo {
        if let Some(info) = self.by_cookie.get(&cookie) {
            return info.clone();
        }
        if self.modules < plan.targets.len() {
            self.read(plan);
        }
        let info = match cookie.checked_sub(FUNCTION_COOKIES) {
            Some(f) => function_info(plan, usize::from(f), self.rows.len()),
            None => plan
                .sites
                .get(usize::from(cookie))
                .and_then(|site| self.rows.get(&(site.module, site.file_offset)))
                .cloned()
                .unwrap_or_default(),
        };
        self.by_cookie.insert(cookie, info.clone());
        info
    }

    /// Names the sites of every module of the plan, numbered as `-l`
    /// numbers them (a module the plan gained later keeps the numbers
    /// before it).
    fn read(&mut self, plan: &Plan) {
        let modules: Vec<_> = plan.targets.iter().map(|t| &*t.module).collect();
        // A module whose symbols cannot be read still has its sites, with
        // `-` for their function.
        let rows = rows_of(&modules, None);
        let mut rows = rows.into_iter().filter(|r| r.id > 3);
        for (m, module) in modules.iter().enumerate() {
            for site in &module.all_sites {
                if site.provider != PROVIDER {
                    continue;
                }
                let Some(row) = rows.next() else { return };
                if let Some(offset) = site.file_offset {
                    self.rows.insert(
                        (m, offset),
                        ProbeInfo {
                            id: i64::from(row.id),
                            module: row.module.into_bytes(),
                            function: row.function.into_bytes(),
                        },
                    );
                }
            }
        }
        self.modules = modules.len();
    }
}

/// A function probe's identity: its file's base name and its symbol; its
/// ID follows the markers' (dtrace numbers the pid provider's probes as it
/// creates them, after those it had).
fn function_info(plan: &Plan, index: usize, marker_rows: usize) -> ProbeInfo {
    let Some(f) = plan.functions.get(index) else {
        return ProbeInfo::default();
    };
    let base = f
        .site
        .file
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    ProbeInfo {
        id: (4 + marker_rows + index) as i64,
        module: base.into_bytes(),
        function: f.site.symbol.clone().into_bytes(),
    }
}

/// The rows of `modules` (of process `pid`, if any).
pub fn rows(modules: &[Module], pid: Option<u32>) -> Result<Vec<Row>> {
    let functions = modules
        .iter()
        .map(Module::site_functions)
        .collect::<Result<Vec<_>, _>>()?;
    let modules: Vec<&Module> = modules.iter().collect();
    Ok(numbered(&modules, functions, pid))
}

/// The rows of `modules`; a module whose symbols cannot be read lists its
/// sites with `-` for their function.
pub fn rows_of(modules: &[&Module], pid: Option<u32>) -> Vec<Row> {
    let functions = modules
        .iter()
        .map(|m| {
            m.site_functions()
                .unwrap_or_else(|_| vec![None; m.all_sites.len()])
        })
        .collect();
    numbered(modules, functions, pid)
}

/// Rows numbered as dtrace numbers them: its own three, then the sites.
fn numbered(
    modules: &[&Module],
    functions: Vec<Vec<Option<String>>>,
    pid: Option<u32>,
) -> Vec<Row> {
    let mut rows: Vec<Row> = ["BEGIN", "END", "ERROR"]
        .iter()
        .zip(1..)
        .map(|(name, id)| Row {
            id,
            provider: "dtrace".into(),
            module: String::new(),
            function: String::new(),
            name: (*name).into(),
        })
        .collect();
    let provider = match pid {
        Some(p) => format!("{PROVIDER}{p}"),
        None => PROVIDER.to_string(),
    };
    let mut id = 4;
    for (module, functions) in modules.iter().zip(functions) {
        let base = module
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for (site, function) in module.all_sites.iter().zip(functions) {
            if site.provider != PROVIDER {
                continue;
            }
            rows.push(Row {
                id,
                provider: provider.clone(),
                module: base.clone(),
                function: function.unwrap_or_else(|| "-".into()),
                name: site.name.replace("__", "-"),
            });
            id += 1;
        }
    }
    rows
}
