//! A plan as text (`--dump-bpf`): per module its sites and the
//! disassembly of its programs and parts, then the task programs and the
//! maps. The integration tests compare it byte for byte.

use std::fmt::Write as _;

use pytap_ebpf::disassemble_with;

use super::{Plan, SiteRole};
use crate::engine::codegen;

impl Plan {
    /// The plan as text: sites, maps and each program's disassembly.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (index, (target, program)) in self.targets.iter().zip(&self.programs).enumerate() {
            let pids = if target.pids.is_empty() {
                "every process".to_string()
            } else {
                format!(
                    "pid {}",
                    target
                        .pids
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            let _ = writeln!(
                out,
                "# module {index}: {} ({pids})",
                target.module.path.display()
            );
            for site in self.sites_of_module(index) {
                let role = match &site.role {
                    SiteRole::Marker => String::new(),
                    SiteRole::Arming(how) => format!("  [arming: {how}]"),
                };
                let _ = writeln!(
                    out,
                    "#   cookie {:>3}  {:<26} offset {:#x}  ref_ctr {:#x}{role}",
                    site.cookie,
                    site.marker.name(),
                    site.file_offset,
                    site.ref_ctr_offset
                );
            }
            let _ = writeln!(
                out,
                "# program {} ({} instructions)",
                program.name,
                program.len()
            );
            out.push_str(&disassemble_with(program, &|m| self.maps.name(m)));
            out.push('\n');
            let prefix = format!("{}_", program.name);
            for part in self
                .parts
                .iter()
                .filter(|p| p.program.name.starts_with(&prefix))
            {
                let _ = writeln!(
                    out,
                    "# program {} (part, slot {} of the parts map, {} instructions)",
                    part.program.name,
                    part.slot,
                    part.program.len()
                );
                out.push_str(&disassemble_with(&part.program, &|m| self.maps.name(m)));
                out.push('\n');
            }
        }
        out.push_str(&codegen::task::dump(&self.maps));
        let _ = writeln!(out, "# maps");
        for spec in self.maps.specs() {
            let _ = writeln!(
                out,
                "#   {:<10} {:?} key {} value {} entries {}",
                spec.name, spec.kind, spec.key_size, spec.value_size, spec.max_entries
            );
        }
        out
    }
}
