//! Probe points: aliases expanded, then `begin`, `end`, `timer.*` and
//! `process(…).mark(…)` resolved to [`ir::PointKind`]s. A probe on several
//! points, a wildcard alias or a wildcard marker becomes one expanded
//! probe per point.

use super::{Catalog, Decls, Expanded};
use crate::ast::{self, Literal, ProbePoint};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{self, Binary, PointKind};

/// `timer.profile`'s rate on each CPU. SystemTap's fires at every tick of
/// the kernel (`CONFIG_HZ`), which a running kernel does not show; 250 is
/// the tick of Debian's and Ubuntu's kernels.
pub const PROFILE_TICK_HZ: u64 = 250;

/// How deep aliases may refer to aliases (a cycle stops here).
const MAX_ALIAS_DEPTH: usize = 16;

/// Expands every probe of the script.
pub(super) fn expand<'a>(
    decls: &Decls<'a>,
    catalog: &Catalog,
    diags: &mut Diagnostics,
) -> Vec<Expanded<'a>> {
    let mut out = Vec::new();
    for (index, decl) in decls.probes.iter().enumerate() {
        for point in &decl.points {
            match resolve(decls, catalog, point, 0) {
                Ok(resolved) => {
                    for r in resolved {
                        let mut bodies = r.prologues;
                        bodies.push(&decl.body);
                        bodies.extend(r.epilogues);
                        out.push(Expanded {
                            sampled_with_context: r.sampled_with_context,
                            point: ir::Point {
                                kind: r.kind,
                                optional: point.optional || r.optional,
                                span: point.span,
                            },
                            bodies,
                            decl,
                            decl_index: index,
                        });
                    }
                }
                // An optional point (`?`, D's `-Z`) that names nothing there is.
                Err(_) if point.optional => {}
                Err(d) => diags.push(d),
            }
        }
    }
    out
}

struct Resolved<'a> {
    kind: PointKind,
    /// `timer.hz(N)`: on the sampler when its body reads the interrupted
    /// thread.
    sampled_with_context: bool,
    optional: bool,
    prologues: Vec<&'a ast::Block>,
    epilogues: Vec<&'a ast::Block>,
}

fn resolve<'a>(
    decls: &Decls<'a>,
    catalog: &Catalog,
    point: &ProbePoint,
    depth: usize,
) -> Result<Vec<Resolved<'a>>, Diagnostic> {
    if let Some(cond) = point.condition {
        return Err(Diagnostic::error(
            cond,
            "conditional probe points (`if (…)` after a point) are not supported yet",
        ));
    }
    if point.sufficient {
        return Err(Diagnostic::error(
            point.span,
            "sufficient probe points (`!`) are not supported yet",
        ));
    }
    let first = point.components[0].name.as_str();
    if matches!(
        first,
        "begin" | "end" | "timer" | "process" | "never" | "profile"
    ) {
        let hz =
            point.components.len() == 2 && first == "timer" && point.components[1].name == "hz";
        return builtin(point, catalog).map(|kinds| {
            kinds
                .into_iter()
                .map(|kind| Resolved {
                    kind,
                    sampled_with_context: hz,
                    optional: false,
                    prologues: Vec::new(),
                    epilogues: Vec::new(),
                })
                .collect()
        });
    }
    let matching: Vec<_> = decls
        .aliases
        .iter()
        .filter(|(a, _)| alias_matches(&a.names[0], point))
        .collect();
    if matching.is_empty() {
        let mut names: Vec<String> = decls
            .aliases
            .iter()
            .map(|(a, _)| a.names[0].text())
            .collect();
        names.sort();
        names.dedup();
        let d = Diagnostic::error(
            point.span,
            format!("no probe point matches `{}`", point.text()),
        );
        let d = if is_foreign(first) {
            d.hint(format!(
                "pytap traces CPython's markers: `process(\"PATH\").mark(\"NAME\")`, `process.mark(\"NAME\")` with -c/-x, `begin`, `end`, `timer.*(N)`, and the aliases of its python tapset; `{first}` probes are SystemTap's kernel probes, which pytap does not have"
            ))
        } else {
            d.hint(format!("the aliases pytap knows are: {}", names.join(", ")))
        };
        return Err(d);
    }
    if depth >= MAX_ALIAS_DEPTH {
        return Err(Diagnostic::error(
            point.span,
            format!("the alias `{}` refers to itself", point.text()),
        ));
    }
    let mut out = Vec::new();
    for (alias, _) in matching {
        for target in &alias.points {
            for mut r in resolve(decls, catalog, target, depth + 1)? {
                r.sampled_with_context = false;
                if alias.epilogue {
                    r.epilogues.push(&alias.body);
                } else {
                    r.prologues.push(&alias.body);
                }
                r.optional |= target.optional;
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Kernel probe families SystemTap has and pytap does not.
fn is_foreign(name: &str) -> bool {
    matches!(
        name,
        "kernel"
            | "module"
            | "syscall"
            | "kprobe"
            | "netfilter"
            | "perf"
            | "tty"
            | "vfs"
            | "ioblock"
            | "scheduler"
            | "signal"
            | "socket"
            | "tcp"
            | "udp"
            | "nd_syscall"
            | "procfs"
            | "java"
            | "oneshot"
    )
}

/// Whether alias name `name` covers `point` (components compared one by
/// one, `*` in either matching any run of characters).
fn alias_matches(name: &ProbePoint, point: &ProbePoint) -> bool {
    name.components.len() == point.components.len()
        && name
            .components
            .iter()
            .zip(&point.components)
            .all(|(a, p)| (glob(&a.name, &p.name) || glob(&p.name, &a.name)) && a.arg == p.arg)
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn builtin(point: &ProbePoint, catalog: &Catalog) -> Result<Vec<PointKind>, Diagnostic> {
    let c = &point.components;
    let err = |msg: String| Diagnostic::error(point.span, msg);
    match c[0].name.as_str() {
        "begin" | "end" if c.len() == 1 => {
            if matches!(c[0].arg, Some(Literal::Str(_))) {
                return Err(err(format!(
                    "`{}` takes a number (its priority)",
                    c[0].name
                )));
            }
            Ok(vec![if c[0].name == "begin" {
                PointKind::Begin
            } else {
                PointKind::End
            }])
        }
        "never" if c.len() == 1 => Ok(Vec::new()),
        // D's `profile-N`, as its description parser spells it.
        "profile" if c.len() == 1 => match c[0].arg {
            Some(Literal::Num(hz)) if hz > 0 => Ok(vec![PointKind::Profile { hz: hz as u64 }]),
            _ => Err(err("`profile` takes a rate: `profile-997`, `profile-10ms`".into())),
        },
        "timer"
            if (c.len() == 2 || (c.len() == 3 && c[2].name == "tick"))
                && c[1].name == "profile"
                && c[1].arg.is_none()
                && c.get(2).is_none_or(|t| t.arg.is_none()) =>
        {
            Ok(vec![PointKind::Profile {
                hz: PROFILE_TICK_HZ,
            }])
        }
        "timer" if c.len() == 2 => {
            let unit = c[1].name.as_str();
            let per_second: Option<u64> = match unit {
                "s" | "sec" => Some(1),
                "ms" | "msec" => Some(1_000),
                "us" | "usec" => Some(1_000_000),
                "ns" | "nsec" => Some(1_000_000_000),
                "hz" => None,
                "jiffies" => {
                    return Err(Diagnostic::error(
                        c[1].span,
                        format!(
                            "`timer.{unit}` is not supported: use `timer.ms(N)` or `timer.hz(N)`"
                        ),
                    ));
                }
                _ => {
                    return Err(Diagnostic::error(
                        c[1].span,
                        format!("`timer.{unit}` is not a timer: use s, ms, us, ns or hz"),
                    ));
                }
            };
            let Some(Literal::Num(n)) = c[1]
                .arg
                .clone()
                .filter(|a| matches!(a, Literal::Num(n) if *n > 0))
            else {
                return Err(Diagnostic::error(
                    c[1].span,
                    format!("`timer.{unit}` needs a positive number: `timer.{unit}(100)`"),
                ));
            };
            let n = n as u64;
            let period_ns = match per_second {
                Some(per) => n.saturating_mul(1_000_000_000 / per),
                None => 1_000_000_000 / n,
            };
            if period_ns < 1_000_000 {
                return Err(Diagnostic::error(
                    c[1].span,
                    "timers run in pytap (not in the kernel), at most every millisecond: use a period of 1 ms or more",
                ));
            }
            Ok(vec![PointKind::Timer { period_ns }])
        }
        "process" => process(point, catalog),
        name => Err(err(format!(
            "`{}` is not a probe point pytap knows",
            point.text()
        ))
        .hint(if name == "timer" {
            "timers are `timer.s(N)`, `timer.ms(N)`, `timer.us(N)`, `timer.ns(N)`, `timer.hz(N)` and `timer.profile`"
                .to_string()
        } else {
            format!("`{name}` takes no more parts here")
        })),
    }
}

/// `process[("PATH")][.library("LIB")][.provider("python")].mark("NAME")`.
fn process(point: &ProbePoint, catalog: &Catalog) -> Result<Vec<PointKind>, Diagnostic> {
    let c = &point.components;
    let binary = match &c[0].arg {
        None => Binary::Target,
        Some(Literal::Str(s)) => Binary::Path(String::from_utf8_lossy(s).into_owned()),
        Some(Literal::Num(_)) => {
            return Err(Diagnostic::error(
                c[0].span,
                "`process(PID)` is not supported yet: run `pytap stap -x PID` and write `process.mark(…)`",
            ));
        }
    };
    let mut library = None;
    let mut mark = None;
    let mut function: Option<String> = None;
    let mut ret = false;
    for comp in &c[1..] {
        let text = match &comp.arg {
            Some(Literal::Str(s)) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        };
        match (comp.name.as_str(), text) {
            ("library", Some(lib)) if mark.is_none() && library.is_none() => library = Some(lib),
            ("provider", Some(p)) if mark.is_none() => {
                if p != "python" {
                    return Err(Diagnostic::error(
                        comp.span,
                        format!("pytap knows the markers of the `python` provider, not `{p}`"),
                    ));
                }
            }
            ("mark", Some(m)) if mark.is_none() && function.is_none() => {
                mark = Some((m, comp.span))
            }
            ("function", Some(f)) if mark.is_none() && function.is_none() => {
                if f.is_empty() || f.contains(['@', ':']) {
                    return Err(Diagnostic::error(
                        comp.span,
                        format!(
                            "`.function(\"{f}\")`: pytap finds functions by their symbol's name (`.function(\"clock_nanosleep\")`, `*` for any run of characters), not by file or line"
                        ),
                    ));
                }
                function = Some(f)
            }
            ("return", None) if function.is_some() && !ret => ret = true,
            ("function" | "statement" | "begin" | "end" | "syscall" | "plt" | "thread", _) => {
                return Err(Diagnostic::error(
                    comp.span,
                    format!(
                        "`process(…).{}` probes are not supported: pytap probes CPython's markers, `process(…).mark(\"NAME\")`, and functions by name, `process(…).function(\"NAME\")[.return]`",
                        comp.name
                    ),
                ));
            }
            (name, _) => {
                return Err(Diagnostic::error(
                    comp.span,
                    format!(
                        "`.{name}` does not belong here: write `process(\"PATH\").mark(\"NAME\")`, optionally with `.library(\"LIB\")` or `.provider(\"python\")` before `.mark`"
                    ),
                ));
            }
        }
    }
    if let Some(function) = function {
        return Ok(vec![PointKind::Function {
            binary,
            library,
            function,
            ret,
        }]);
    }
    let Some((name, span)) = mark else {
        return Err(Diagnostic::error(
            point.span,
            "a process probe needs a marker or a function: `.mark(\"function__entry\")`, `.function(\"clock_nanosleep\")`",
        ));
    };
    // SystemTap accepts `function-entry` for `function__entry`.
    let name = name.replace('-', "__");
    let found: Vec<usize> = catalog
        .markers
        .iter()
        .enumerate()
        .filter(|(_, m)| glob(&name, &m.name))
        .map(|(i, _)| i)
        .collect();
    if found.is_empty() {
        let names: Vec<_> = catalog.markers.iter().map(|m| m.name.as_str()).collect();
        return Err(
            Diagnostic::error(span, format!("no python marker matches `{name}`"))
                .hint(format!("CPython's markers are: {}", names.join(", "))),
        );
    }
    Ok(found
        .into_iter()
        .map(|marker| PointKind::Marker {
            binary: binary.clone(),
            library: library.clone(),
            marker,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("gc__*", "gc__start"));
        assert!(glob("*", "anything"));
        assert!(glob("*__entry", "function__entry"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("gc__*", "line"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("abc", "abc"));
    }
}
