//! A script's sources (the file, `-e` text, `-I` tapsets, pytap's own
//! tapset) compiled and placed; errors rendered with their carets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pytap_script::check::Input;
use pytap_script::diag::Diagnostics;
use pytap_script::ir::Program;
use pytap_script::source::SourceMap;
use pytap_script::tapset;

use crate::engine::codegen::script::catalog::catalog;
use crate::engine::codegen::script::placement::{self, Placement};

/// What the user gave.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The script file.
    pub script: Option<PathBuf>,
    /// `-e` texts.
    pub inline: Vec<String>,
    /// `-I` directories, searched for `*.stp` tapsets.
    pub includes: Vec<PathBuf>,
    /// Arguments after the script (`$1`, `@1`; D's macro arguments).
    pub args: Vec<String>,
    /// The script's language.
    pub dialect: pytap_script::check::Dialect,
}

/// A compiled script, ready to plan.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Every source file (for messages).
    pub sources: Arc<SourceMap>,
    /// The program.
    pub program: Arc<Program>,
    /// What runs where.
    pub placement: Arc<Placement>,
    /// Warnings, rendered.
    pub warnings: String,
    /// The script's language.
    pub dialect: pytap_script::check::Dialect,
}

/// A script that does not compile: its diagnostics, rendered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScriptErrors(pub String);

/// The tapset files of an `-I` directory, sorted by name.
fn tapsets_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("-I {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "stp") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads, parses, checks and places a script.
pub fn compile(src: &Sources) -> anyhow::Result<Compiled> {
    let mut map = SourceMap::new();
    let mut script = Vec::new();
    if let Some(path) = &src.script {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{}: the script is not UTF-8 text", path.display()))?;
        script.push(map.add(path.display().to_string(), text));
    }
    for text in &src.inline {
        let name = match src.dialect {
            pytap_script::check::Dialect::Stap => "<-e>",
            pytap_script::check::Dialect::D { .. } => "<-n>",
        };
        script.push(map.add(name, text.clone()));
    }
    if script.is_empty() {
        match src.dialect {
            pytap_script::check::Dialect::Stap => {
                anyhow::bail!("give a script: a file, or -e 'probe …'")
            }
            pytap_script::check::Dialect::D { .. } => {
                anyhow::bail!(
                    "give a program: -s FILE, or -n 'python$target:::function-entry {{ … }}'"
                )
            }
        }
    }
    let mut tapsets = Vec::new();
    for dir in &src.includes {
        for file in tapsets_in(dir)? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            tapsets.push(map.add(file.display().to_string(), text));
        }
    }
    tapsets.push(map.add(tapset::NAME, tapset::TEXT));
    let catalog = catalog();
    let compiled = pytap_script::check::compile(Input {
        sources: &map,
        script: &script,
        tapsets: &tapsets,
        catalog: &catalog,
        args: &src.args,
        dialect: src.dialect,
    })
    .map_err(|d| ScriptErrors(d.render(&map)))?;
    // Nothing would ever run, and the run would wait for a target or a
    // signal: SystemTap and dtrace refuse such a script too.
    if compiled.program.probes.is_empty() {
        match src.dialect {
            pytap_script::check::Dialect::Stap => {
                anyhow::bail!("no probes found: the script has no `probe` (nothing would run)")
            }
            pytap_script::check::Dialect::D { .. } => {
                anyhow::bail!("no probes specified: the program has no clause (nothing would run)")
            }
        }
    }
    let placement = placement::place(&compiled.program)
        .map_err(|diags| ScriptErrors(Diagnostics { list: diags }.render(&map)))?;
    Ok(Compiled {
        warnings: compiled.warnings.render(&map),
        dialect: compiled.dialect,
        sources: Arc::new(map),
        program: Arc::new(compiled.program),
        placement: Arc::new(placement),
    })
}

/// The verifier's complaint about a script's program, shown at the
/// statement whose code it refused: the failing instruction is the last
/// numbered line of the log, and the statement the nearest script comment
/// before it. `None` when the log does not say.
pub fn verifier_error(
    compiled: &Compiled,
    programs: &[pytap_ebpf::Program],
    name: &str,
    log_tail: &str,
) -> Option<String> {
    let program = programs.iter().find(|p| p.name == name)?;
    let lines: Vec<&str> = log_tail.lines().collect();
    let numbered = |l: &str| {
        l.trim_start()
            .split_once(": ")
            .and_then(|(n, _)| n.parse::<usize>().ok())
    };
    // The verifier's sentence: not an instruction, a state or a summary.
    let complaint = lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|t| {
            !t.is_empty()
                && numbered(t).is_none()
                && ![
                    "processed ",
                    "cur state",
                    "old state",
                    "from ",
                    "verification time",
                    "stack depth",
                ]
                .iter()
                .any(|p| t.starts_with(p))
        })
        .unwrap_or("(no message)");
    // The instruction it names (`infinite loop detected at insn 50`), or
    // the last one it walked.
    let insn = complaint
        .rsplit_once("at insn ")
        .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        .or_else(|| lines.iter().rev().find_map(|l| numbered(l)))?;
    let span = (0..=insn.min(program.len().saturating_sub(1)))
        .rev()
        .find_map(|i| {
            program
                .comment_at(i)
                .and_then(crate::engine::codegen::script::lower::comment_span)
        })?;
    // The verifier's own limits on a program's complexity (the number of
    // paths it explores, pending branches, instructions processed).
    let complex = [
        "is too complex",
        "too many states",
        "Processed 1000001 insn",
    ]
    .iter()
    .any(|w| complaint.contains(w));
    let looping = ["infinite loop", "back-edge", "loop"]
        .iter()
        .any(|w| complaint.contains(w));
    let hint = if complex {
        "the kernel's verifier stops at a limit on how complex one program may be (the paths it explores from each branch); pytap splits a marker's probes over up to 34 programs, and this marker's probes are still past it: fewer or shorter probes on one marker, or work moved to `end` and timer probes, which run in pytap"
    } else if looping || complaint.contains("too large") {
        "the kernel must prove that a probe ends: a loop in a marker probe needs a bound it can see (`for (i = 0; i < 10; i++)`); loops over data belong in `end` or timer probes, which run in pytap"
    } else {
        "pytap should not make code the verifier refuses: please report it with the output of --dump-bpf"
    };
    let d = pytap_script::diag::Diagnostic::error(
        span,
        format!("the kernel's verifier refused the code pytap made of this: {complaint} (instruction {insn})"),
    )
    .hint(hint);
    Some(d.render(&compiled.sources))
}
