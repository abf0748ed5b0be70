//! From syntax to the compiled form: probe aliases expanded, probe points
//! resolved, names bound to globals, locals and functions, and every
//! expression typed ([`body`]).
//!
//! Types are inferred as SystemTap infers them, from use: a variable is a
//! number or a string because of what is assigned to it, compared with it
//! or passed for it, wherever that happens in the program. The bodies are
//! walked until nothing new is learnt, then once more to build the
//! [`Program`] and report what does not fit.

mod aggs;
mod body;
mod calls;
mod dead;
pub use dead::{pure, stmt_exprs, walk};
mod exprs;
mod fuse;
mod points;
pub use points::glob;
mod stmts;

use std::collections::{BTreeMap, HashMap};

use crate::ast::{self, Item};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{self, Program, Ty};
use crate::source::{FileId, SourceMap, Span};

/// A marker scripts can probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerInfo {
    /// Its name (`function__entry`).
    pub name: String,
    /// How many arguments it passes.
    pub args: usize,
    /// A function marker: `$arg4` is the frame (see [`ir::Ctx::Frame`]).
    pub function: bool,
}

impl MarkerInfo {
    /// What a function probe's body sees as its "marker": D's
    /// `probename` is `entry` or `return`, the arguments are the six
    /// argument registers (at a return, `arg1`/`$return` is the value
    /// returned and the others are 0).
    pub fn of_function(ret: bool) -> MarkerInfo {
        MarkerInfo {
            name: if ret { "return" } else { "entry" }.into(),
            args: ir::FUNCTION_ARGS,
            function: false,
        }
    }
}

/// The markers of the `python` provider, from the caller (pytap's
/// catalogue of CPython's markers).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The markers, by index ([`ir::PointKind::Marker`]'s `marker`).
    pub markers: Vec<MarkerInfo>,
}

/// What to compile: the script's files (the script, then `-e` text), and
/// tapset files in order of precedence (`-I` directories first, pytap's
/// own last): an alias defined in an earlier tapset hides later ones of
/// the same name, and the script's own aliases hide them all.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Every file.
    pub sources: &'a SourceMap,
    /// The script.
    pub script: &'a [FileId],
    /// Tapsets, in order of precedence.
    pub tapsets: &'a [FileId],
    /// The markers.
    pub catalog: &'a Catalog,
    /// The script's arguments: `$1` (a number) and `@1` (a string).
    pub args: &'a [String],
    /// The language the script's files are in (tapsets are SystemTap's).
    pub dialect: Dialect,
}

/// A script's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// SystemTap's.
    #[default]
    Stap,
    /// D (dtrace's); `quiet` as `-q` or `#pragma D option quiet` set it
    /// (`trace()` prints differently).
    D {
        /// Quiet mode.
        quiet: bool,
        /// `-Z`: probe descriptions that match nothing are dropped.
        zdefs: bool,
    },
}

/// A compiled program and the warnings about it.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The program.
    pub program: Program,
    /// Warnings (errors stop compilation).
    pub warnings: Diagnostics,
    /// The language, as the program settles it: a D program's
    /// `#pragma D option quiet` (in any of its files) makes it quiet.
    pub dialect: Dialect,
}

/// A script file parsed, and whether it asks for D's quiet and zdefs
/// options (`#pragma D option …`).
type ParsedFile = (FileId, ast::File, (bool, bool));

/// The script's files parsed in `dialect`.
fn parse_script(input: &Input<'_>, dialect: Dialect) -> Result<Vec<ParsedFile>, Diagnostics> {
    let mut parsed = Vec::new();
    for &file in input.script {
        let text = &input.sources.file(file).text;
        parsed.push(match dialect {
            Dialect::D { quiet, zdefs } => {
                let opts = crate::dtrace::DOptions {
                    macro_args: input.args.to_vec(),
                    quiet,
                    zdefs,
                };
                let program = crate::dtrace::parse(file, text, &opts).map_err(Diagnostics::from)?;
                let asks = (program.option("quiet"), program.option("zdefs"));
                (file, program.file, asks)
            }
            Dialect::Stap => (
                file,
                crate::stap::parse(file, text).map_err(Diagnostics::from)?,
                (false, false),
            ),
        });
    }
    Ok(parsed)
}

/// The stack the compiler's passes run on. Parsing and checking recurse
/// over the script's nesting (at most [`crate::cursor::MAX_NESTING`]
/// levels, each a dozen frames through the precedence levels), which in
/// a build without optimisations takes tens of KiB a level: more than a
/// test thread's 2 MiB or, near the limit, a main thread's 8 MiB. The
/// stack is reserved, not used: only the pages a script reaches are.
const COMPILE_STACK: usize = 256 << 20;

/// Compiles a script (on a thread of its own with [`COMPILE_STACK`], or
/// here when no such thread can be made).
pub fn compile(input: Input<'_>) -> Result<Compiled, Diagnostics> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("pytap-compile".into())
            .stack_size(COMPILE_STACK)
            .spawn_scoped(scope, || compile_here(&input));
        match worker {
            Ok(worker) => worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => compile_here(&input),
        }
    })
}

fn compile_here(input: &Input<'_>) -> Result<Compiled, Diagnostics> {
    let input = *input;
    let mut dialect = input.dialect;
    let mut script = parse_script(&input, dialect)?;
    // Quiet mode changes how D clauses print, and zdefs which probe
    // points may match nothing, so a program that asks for them
    // (`#pragma D option quiet`) is parsed again with them.
    if let Dialect::D { quiet, zdefs } = dialect {
        let asks_quiet = script.iter().any(|(_, _, asks)| asks.0);
        let asks_zdefs = script.iter().any(|(_, _, asks)| asks.1);
        if (asks_quiet && !quiet) || (asks_zdefs && !zdefs) {
            dialect = Dialect::D {
                quiet: quiet || asks_quiet,
                zdefs: zdefs || asks_zdefs,
            };
            script = parse_script(&input, dialect)?;
        }
    }
    let mut parsed: Vec<(FileId, ast::File)> =
        script.into_iter().map(|(f, ast, _)| (f, ast)).collect();
    for &file in input.tapsets {
        let text = &input.sources.file(file).text;
        parsed.push((
            file,
            crate::stap::parse(file, text).map_err(Diagnostics::from)?,
        ));
    }
    let decls = Decls::collect(&parsed, input.script);
    let mut diags = Diagnostics::default();
    let probes = points::expand(&decls, input.catalog, &mut diags);
    if diags.has_errors() {
        return Err(diags);
    }
    let mut program = body::check(&decls, &probes, input.catalog, input.args, &mut diags);
    if diags.has_errors() {
        return Err(diags);
    }
    fuse::fuse_printfs(&mut program);
    Ok(Compiled {
        program,
        warnings: diags,
        dialect,
    })
}

/// Declarations by name, with the script's ahead of tapsets'.
pub(crate) struct Decls<'a> {
    /// The script's probes, in source order.
    pub probes: Vec<&'a ast::ProbeDecl>,
    /// Globals: the script's, then tapsets' (a tapset global exists only
    /// if something refers to it).
    pub globals: BTreeMap<String, (&'a ast::GlobalDecl, bool)>,
    /// Global names in declaration order.
    pub global_order: Vec<String>,
    /// Functions by name (the first definition wins: script, then tapsets
    /// in order).
    pub functions: HashMap<String, &'a ast::FunctionDecl>,
    /// Aliases: each name's definitions from the first source that has it.
    pub aliases: Vec<(&'a ast::AliasDecl, usize)>,
}

impl<'a> Decls<'a> {
    fn collect(parsed: &'a [(FileId, ast::File)], script: &[FileId]) -> Decls<'a> {
        let mut d = Decls {
            probes: Vec::new(),
            globals: BTreeMap::new(),
            global_order: Vec::new(),
            functions: HashMap::new(),
            aliases: Vec::new(),
        };
        // Which source (0: the script, 1..: tapsets) first defined an alias name.
        let mut alias_source: HashMap<String, usize> = HashMap::new();
        for (rank, (file, ast)) in parsed.iter().enumerate() {
            let is_script = script.contains(file);
            let source = if is_script { 0 } else { rank + 1 };
            for item in &ast.items {
                match item {
                    Item::Probe(p) if is_script => d.probes.push(p),
                    // A tapset's own probes run only if the script uses the
                    // tapset, which SystemTap decides by what it refers to;
                    // pytap's tapsets have none, and others' are ignored.
                    Item::Probe(_) => {}
                    Item::Global(gs) => {
                        for g in gs {
                            if !d.globals.contains_key(&g.name.name) {
                                d.globals.insert(g.name.name.clone(), (g, is_script));
                                d.global_order.push(g.name.name.clone());
                            }
                        }
                    }
                    Item::Function(f) => {
                        d.functions.entry(f.name.name.clone()).or_insert(f);
                    }
                    Item::Alias(a) => {
                        let name = a.names[0].text();
                        let first = *alias_source.entry(name).or_insert(source);
                        if first == source {
                            d.aliases.push((a, source));
                        }
                    }
                }
            }
        }
        d
    }
}

/// A probe declaration expanded for one resolved point: the point and
/// the bodies to run, in order (alias prologues, the user's, epilogues).
pub(crate) struct Expanded<'a> {
    pub point: ir::Point,
    /// Written `timer.hz(N)`: a body that reads the thread it interrupts
    /// (`pid()`, `execname()`, a backtrace) makes it a
    /// [`ir::PointKind::Profile`] probe.
    pub sampled_with_context: bool,
    pub bodies: Vec<&'a ast::Block>,
    pub decl: &'a ast::ProbeDecl,
    pub decl_index: usize,
}

/// The type a `long`/`string` annotation names.
pub(crate) fn annotated(t: ast::TypeName) -> Ty {
    match t {
        ast::TypeName::Long => Ty::Long,
        ast::TypeName::String => Ty::Str,
    }
}

/// "expected X, found Y" for types.
pub(crate) fn mismatch(span: Span, what: &str, expected: Ty, found: Ty) -> Diagnostic {
    Diagnostic::error(
        span,
        format!(
            "{what} is {} here, but {} is needed",
            found.name(),
            expected.name()
        ),
    )
}
