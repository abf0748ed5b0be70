//! Which binaries a script's marker probes watch.
//!
//! `process("PATH")` is resolved as SystemTap resolves it: a path, or a
//! name looked up on `PATH`; the markers are in that binary or in the
//! libpython it links, and `.library("NAME")` names the library. With a
//! `-c`/`-x` target, probes watch the target's process tree; one whose
//! binary has no markers here (the HOWTO's `process("python")`, where the
//! interpreter is `python3.X`) is bound to the target's interpreter, with
//! a note. Without a target, probes watch every process running their
//! binaries, now and later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pytap_script::ir::{Binary, PointKind, Program};
use pytap_script::source::SourceMap;

use crate::engine::codegen::script::Bindings;
use crate::engine::plan::AttachTarget;
use crate::process;
use crate::process::module::{self, Module};

/// A probe's binary as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Spec {
    binary: Binary,
    library: Option<String>,
}

/// What a spec resolved to.
#[derive(Debug, Clone)]
enum Found {
    /// The module with the markers.
    Module(Box<Module>),
    /// Why nothing was found.
    Nothing(String),
}

/// The resolved binaries of a script.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    specs: BTreeMap<Spec, Found>,
    /// Per probe, its spec (marker probes only).
    probes: Vec<Option<Spec>>,
    /// The first probe of each spec, for messages.
    first: BTreeMap<Spec, pytap_script::source::Span>,
}

fn spec_text(spec: &Spec) -> String {
    let mut s = match &spec.binary {
        Binary::Target => "process".to_string(),
        Binary::Path(p) => format!("process(\"{p}\")"),
    };
    if let Some(l) = &spec.library {
        s.push_str(&format!(".library(\"{l}\")"));
    }
    s
}

/// Library directories searched for `.library("NAME")` (the usual
/// multiarch and local ones).
const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/local/lib",
    "/usr/lib",
    "/lib",
    "/usr/lib64",
    "/lib64",
];

fn resolve(spec: &Spec) -> Found {
    let Binary::Path(name) = &spec.binary else {
        return Found::Nothing("it names the target".into());
    };
    let Some(path) = process::which(Path::new(name)) else {
        return Found::Nothing(if name.contains('/') {
            format!("{name} is not an executable file")
        } else {
            format!("no `{name}` on PATH")
        });
    };
    let ld_path = std::env::var("LD_LIBRARY_PATH").ok();
    if let Some(lib) = &spec.library {
        let candidates: Vec<PathBuf> = if lib.contains('/') {
            vec![PathBuf::from(lib)]
        } else {
            LIBRARY_DIRS
                .iter()
                .map(|d| Path::new(d).join(lib))
                .collect()
        };
        // The library the binary links, if that is the one named.
        if let Ok(m) = process::resolve_path(&path, Path::new("/"), ld_path.as_deref())
            && m.file_name()
                == Path::new(lib)
                    .file_name()
                    .map_or(lib.clone(), |f| f.to_string_lossy().into_owned())
        {
            return Found::Module(Box::new(m));
        }
        return match candidates.iter().find(|c| c.is_file()) {
            Some(c) => match Module::open(c, c) {
                Ok(m) if m.has_python_markers() => Found::Module(Box::new(m)),
                Ok(m) => Found::Nothing(process::no_markers_error(&m).to_string()),
                Err(e) => Found::Nothing(e.to_string()),
            },
            None => Found::Nothing(format!("no library {lib} found")),
        };
    }
    match process::resolve_path(&path, Path::new("/"), ld_path.as_deref()) {
        Ok(m) => Found::Module(Box::new(m)),
        Err(e) => Found::Nothing(format!("{}: {e}", module::display(&path))),
    }
}

impl Resolution {
    /// Resolves every marker probe's binary.
    pub fn of(program: &Program) -> Resolution {
        let mut r = Resolution::default();
        for probe in &program.probes {
            let PointKind::Marker {
                binary, library, ..
            } = &probe.point.kind
            else {
                r.probes.push(None);
                continue;
            };
            let spec = Spec {
                binary: binary.clone(),
                library: library.clone(),
            };
            if !r.specs.contains_key(&spec) {
                r.specs.insert(spec.clone(), resolve(&spec));
                r.first.insert(spec.clone(), probe.point.span);
            }
            r.probes.push(Some(spec));
        }
        r
    }

    /// Whether some probe needs a `-c`/`-x` target (`process.mark`).
    pub fn needs_target(&self) -> Option<pytap_script::source::Span> {
        self.first
            .iter()
            .find(|(s, _)| s.binary == Binary::Target)
            .map(|(_, span)| *span)
    }

    /// Without a target: the binaries to watch system-wide, or the first
    /// probe whose binary was not found and why.
    pub fn binaries(&self, sources: &SourceMap) -> Result<Vec<PathBuf>, String> {
        let mut out = Vec::new();
        for (spec, found) in &self.specs {
            match found {
                Found::Module(m) => {
                    if !out.contains(&m.path) {
                        out.push(m.path.clone());
                    }
                }
                Found::Nothing(why) => {
                    let at = sources.location(self.first[spec]);
                    return Err(format!(
                        "{at}: {} has no python markers to probe: {why}; name the interpreter with process(\"/path/to/python3.X\"), or run the script with -c CMD or -x PID to probe the target's interpreter",
                        spec_text(spec)
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The probes' bindings for a run on `targets` (with `-c`/`-x` when
    /// `targeted`), and the notes to show.
    pub fn bindings(
        &self,
        targets: &[AttachTarget],
        targeted: bool,
        sources: &SourceMap,
    ) -> (Bindings, Vec<String>) {
        let mut notes = Vec::new();
        let mut rules: BTreeMap<Spec, Option<Vec<(u64, u64)>>> = BTreeMap::new();
        for (spec, found) in &self.specs {
            let rule = match (found, &spec.binary) {
                (_, Binary::Target) => None,
                (Found::Module(m), _) => {
                    if targeted && !targets.iter().any(|t| module::same_file(&t.module, m)) {
                        notes.push(format!(
                            "{}: {} is {}, which the target does not run now; its probes fire if a process of the target's tree runs it",
                            sources.location(self.first[spec]),
                            spec_text(spec),
                            module::display(&m.path)
                        ));
                    }
                    Some(vec![(m.dev, m.inode)])
                }
                (Found::Nothing(why), _) if targeted => {
                    let by_name: Vec<(u64, u64)> = spec
                        .library
                        .as_ref()
                        .map(|lib| {
                            targets
                                .iter()
                                .filter(|t| t.module.file_name() == *lib)
                                .map(|t| (t.module.dev, t.module.inode))
                                .collect()
                        })
                        .unwrap_or_default();
                    let what: Vec<String> = targets
                        .iter()
                        .map(|t| module::display(&t.module.path))
                        .collect();
                    notes.push(format!(
                        "{}: {} has no python markers here ({why}); probing the target's {} instead",
                        sources.location(self.first[spec]),
                        spec_text(spec),
                        what.join(", ")
                    ));
                    (!by_name.is_empty()).then_some(by_name)
                }
                (Found::Nothing(_), _) => Some(Vec::new()),
            };
            rules.insert(spec.clone(), rule);
        }
        let probes = self
            .probes
            .iter()
            .map(|s| s.as_ref().and_then(|s| rules.get(s).cloned().flatten()))
            .collect();
        (Bindings { probes }, notes)
    }
}
