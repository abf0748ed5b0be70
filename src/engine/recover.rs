//! Strings the probe could not read, recovered from the binary.
//!
//! `bpf_probe_read_user_str` cannot fault pages in, so a string in a part
//! of the binary the target has not touched yet comes back unreadable (seen
//! with CPython 3.14's audit event names). Such strings are constants in
//! the module's read-only data: pytap reads them from the file instead,
//! translating the runtime address through `/proc/PID/maps` for
//! position-independent modules.

use std::collections::HashMap;

use pytap_elf::ElfKind;

use super::abi::STR_CAP;
use super::session::Session;
use crate::process::proc::{Mapping, parse_maps};

/// Recovers strings by (site, pid, pointer); caches each process's maps.
#[derive(Debug, Default)]
pub struct Recovery {
    maps: HashMap<u32, Vec<Mapping>>,
    /// Strings recovered so far.
    pub recovered: u64,
}

impl Recovery {
    /// The string at `ptr` in process `pid`, read from the module the event's
    /// site belongs to, if the pointer lands in that file.
    pub fn string(&mut self, session: &Session, site: u16, pid: u32, ptr: u64) -> Option<Vec<u8>> {
        let site = session.plan.sites.get(usize::from(site))?;
        let module = &session.plan.targets.get(site.module)?.module;
        let found = match module.kind {
            ElfKind::Executable => module.read_cstr(ptr, STR_CAP),
            ElfKind::SharedObject => {
                let maps = self.maps.entry(pid).or_insert_with(|| {
                    std::fs::read_to_string(format!("/proc/{pid}/maps"))
                        .map(|t| parse_maps(&t))
                        .unwrap_or_default()
                });
                let m = maps
                    .iter()
                    .find(|m| m.inode == module.inode && ptr >= m.start && ptr < m.end)?;
                module.read_cstr_at_offset(ptr - m.start + m.offset, STR_CAP)
            }
        };
        if found.is_some() {
            self.recovered += 1;
        }
        found
    }
}
