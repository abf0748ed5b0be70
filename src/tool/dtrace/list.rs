//! `pytap dtrace -l`: probes in dtrace's `ID PROVIDER MODULE FUNCTION
//! NAME` layout, one row per marker site. The dtrace provider's `BEGIN`,
//! `END` and `ERROR` are 1, 2 and 3 as in dtrace; sites are numbered
//! from 4 in module and note order. FUNCTION is the C function that holds
//! the site, from the module's symbols (`-` when none covers it). The pid
//! provider's probes a description names (`pid1234::clock_nanosleep:`)
//! follow: each function found by its symbol in the process's files, its
//! `entry` and `return`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::process;
use crate::script::probes::{Row, rows};

/// What `-l` lists.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// The process (`-p`, `-P pythonPID`, or a `pythonPID` in `-n`).
    pub pid: Option<u32>,
    /// Binaries (`-m python3.11` naming a file or a program on PATH).
    pub binaries: Vec<PathBuf>,
    /// `-P` globs.
    pub providers: Vec<String>,
    /// `-m` globs.
    pub modules: Vec<String>,
    /// `-f` globs.
    pub functions: Vec<String>,
    /// `-n` descriptions (`provider:module:function:name`).
    pub descriptions: Vec<String>,
}

/// `*`, `?` and `[…]` globs, as dtrace matches probe descriptions.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(b'[') => {
                let Some(end) = p.iter().position(|&c| c == b']') else {
                    return t.first() == Some(&b'[') && go(&p[1..], &t[1..]);
                };
                let set = &p[1..end];
                let (negate, set) = match set.first() {
                    Some(b'!') => (true, &set[1..]),
                    _ => (false, set),
                };
                let Some(&c) = t.first() else { return false };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[end + 1..], &t[1..])
            }
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    pattern.is_empty() || go(pattern.as_bytes(), text.as_bytes())
}

/// Whether a row matches what was asked (every given filter).
fn wanted(request: &ListRequest, row: &Row) -> bool {
    let any =
        |globs: &[String], text: &str| globs.is_empty() || globs.iter().any(|g| glob(g, text));
    if !(any(&request.providers, &row.provider)
        && any(&request.modules, &row.module)
        && any(&request.functions, &row.function))
    {
        return false;
    }
    request.descriptions.is_empty()
        || request.descriptions.iter().any(|d| {
            let fields: Vec<&str> = d.split(':').collect();
            let mut f = ["", "", "", ""];
            let n = fields.len().min(4);
            f[4 - n..].copy_from_slice(&fields[fields.len() - n..]);
            glob(f[0], &row.provider)
                && glob(f[1], &row.module)
                && glob(f[2], &row.function)
                && glob(f[3], &row.name)
        })
}

/// The `-n` descriptions of the pid provider, as (module, function, name)
/// globs.
fn pid_descriptions(request: &ListRequest) -> Vec<[String; 3]> {
    request
        .descriptions
        .iter()
        .filter_map(|d| {
            let fields: Vec<&str> = d.split(':').collect();
            (fields.len() == 4 && fields[0].starts_with("pid"))
                .then(|| [fields[1].into(), fields[2].into(), fields[3].into()])
        })
        .collect()
}

/// The pid provider's rows for `pid`, numbered from `next`.
fn pid_rows(
    request: &ListRequest,
    module: &crate::process::module::Module,
    pid: u32,
    mut next: u32,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    let ld_path = crate::process::proc::environ_var(pid, "LD_LIBRARY_PATH");
    let files = process::functions::run_files(module, Some(pid), ld_path.as_deref());
    for [module_glob, function, name] in pid_descriptions(request) {
        if function.is_empty() || function == "*" {
            anyhow::bail!(
                "-l -n 'pid{pid}:{module_glob}::{name}': name the function (`pid{pid}::clock_nanosleep:`): every function of every file is tens of thousands of probes"
            );
        }
        for file in &files {
            let base = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !glob(&module_glob, &base) {
                continue;
            }
            for site in process::functions::find_in(file, &function.replace('?', "*")) {
                for probe in ["entry", "return"] {
                    if !glob(&name, probe) {
                        continue;
                    }
                    out.push(Row {
                        id: next,
                        provider: format!("pid{pid}"),
                        module: base.clone(),
                        function: site.symbol.clone(),
                        name: probe.into(),
                    });
                    next += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Runs `pytap dtrace -l`; whether anything matched.
pub fn run(request: &ListRequest, out: &mut dyn Write) -> Result<bool> {
    let mut modules = Vec::new();
    let pid_probes = !pid_descriptions(request).is_empty();
    if let Some(pid) = request.pid {
        let wanted = if pid_probes {
            process::Wanted::Interpreter
        } else {
            process::Wanted::Markers
        };
        modules = process::discover_process_for(pid, wanted)?.modules;
    }
    for path in &request.binaries {
        let found = process::which(path).unwrap_or_else(|| path.clone());
        modules.push(process::resolve_path(
            &found,
            "/".as_ref(),
            std::env::var("LD_LIBRARY_PATH").ok().as_deref(),
        )?);
    }
    let mut rows = rows(&modules, request.pid)?;
    if let (true, Some(pid), Some(module)) = (pid_probes, request.pid, modules.first()) {
        let next = rows.iter().map(|r| r.id).max().unwrap_or(3) + 1;
        rows.extend(pid_rows(request, module, pid, next)?);
    }
    let rows: Vec<&Row> = rows.iter().filter(|r| wanted(request, r)).collect();
    writeln!(
        out,
        "{:>5} {:>10} {:>17} {:>33} NAME",
        "ID", "PROVIDER", "MODULE", "FUNCTION"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:>5} {:>10} {:>17} {:>33} {}",
            r.id, r.provider, r.module, r.function, r.name
        )?;
    }
    Ok(!rows.is_empty())
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn dtrace_globs() {
        assert!(glob("python*", "python1234"));
        assert!(glob("gc-*", "gc-start"));
        assert!(glob("", "anything"));
        assert!(glob("python[0-9]*", "python42"));
        assert!(!glob("python[!0-9]*", "python42"));
        assert!(glob("function-???ry", "function-entry"));
        assert!(!glob("gc-*", "line"));
    }
}
