//! D's probe identity at run time: the site a record came from (its attach
//! cookie) named as `pytap dtrace -l` names it, id, module and C function
//! (`probemod`, `probefunc` and the firing line's ID). The numbering is
//! the listing's ([`super::list::rows`]) over the session's modules, read
//! once, when a program first asks.

use std::collections::HashMap;

use pytap_script::interp::ProbeInfo;

use super::list;
use crate::engine::plan::Plan;

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
        let info = plan
            .sites
            .get(usize::from(cookie))
            .and_then(|site| self.rows.get(&(site.module, site.file_offset)))
            .cloned()
            .unwrap_or_default();
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
        let rows = list::rows_of(&modules, None);
        let mut rows = rows.into_iter().filter(|r| r.id > 3);
        for (m, module) in modules.iter().enumerate() {
            for site in &module.all_sites {
                if site.provider != crate::cpython::marker::PROVIDER {
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
