//! Probe descriptions (`provider:module:function:name`) to probe points:
//! `BEGIN`, `END`, `tick-N[unit]`, `profile-N[unit]`, and the `python` provider's markers
//! (`python$target:::function-entry`), whose dashes are CPython's double
//! underscores; the `pid` provider's function entries and returns
//! (`pid$target:libc.so.6:clock_nanosleep:entry`), as SystemTap's
//! `process.library("libc.so.6").function("clock_nanosleep")`.

use super::parser::{PResult, Parser};
use crate::ast::{Component, Literal, ProbePoint};
use crate::diag::Diagnostic;
use crate::source::Span;

fn point(components: Vec<Component>, span: Span) -> ProbePoint {
    ProbePoint {
        components,
        optional: false,
        sufficient: false,
        condition: None,
        span,
    }
}

fn comp(name: &str, arg: Option<Literal>, span: Span) -> Component {
    Component {
        name: name.into(),
        arg,
        span,
    }
}

/// The probe points a description names.
pub(super) fn description(p: &mut Parser<'_>, desc: &str, span: Span) -> PResult<Vec<ProbePoint>> {
    match desc {
        "BEGIN" | ":::BEGIN" | "dtrace:::BEGIN" => {
            return Ok(vec![point(vec![comp("begin", None, span)], span)]);
        }
        "END" | ":::END" | "dtrace:::END" => {
            return Ok(vec![point(vec![comp("end", None, span)], span)]);
        }
        // pytap reports run-time errors itself and ends the run.
        "ERROR" | ":::ERROR" | "dtrace:::ERROR" => {
            return Ok(vec![point(vec![comp("never", None, span)], span)]);
        }
        _ => {}
    }
    let name = desc.rsplit(':').next().unwrap_or(desc);
    if let Some(spec) = name.strip_prefix("tick-") {
        return Ok(vec![tick(spec, span)?]);
    }
    if let Some(spec) = name.strip_prefix("profile-") {
        return Ok(vec![profile(spec, span)?]);
    }
    let fields: Vec<&str> = desc.split(':').collect();
    if fields.len() > 4 {
        return Err(Diagnostic::error(
            span,
            "a probe description has at most four fields: provider:module:function:name",
        ));
    }
    // Fewer fields fill from the right: `function-entry` is the name.
    let mut f = ["", "", "", ""];
    f[4 - fields.len()..].copy_from_slice(&fields);
    let [provider, module, function, name] = f;
    if let Some(pid) = provider.strip_prefix("pid") {
        return pid_probe(p, pid, [module, function, name], span);
    }
    check_provider(p, "python", provider, span)?;
    for (what, value) in [("module", module), ("function", function)] {
        if !value.is_empty() && value != "*" {
            return Err(Diagnostic::error(
                span,
                format!("probe descriptions with a {what} (`{value}`) are not supported yet: leave the field empty"),
            )
            .hint("`python$target:::function-entry` probes every site of the marker"));
        }
    }
    let name = if name.is_empty() { "*" } else { name };
    let mut marker = point(
        vec![
            comp("process", None, span),
            comp("mark", Some(Literal::Str(name.as_bytes().to_vec())), span),
        ],
        span,
    );
    // `-Z`: a description that matches no marker is dropped, not an error
    // (SystemTap's `?`).
    marker.optional = p.opts.zdefs;
    Ok(vec![marker])
}

/// The `pid` provider's probes: `pid$target:MODULE:FUNCTION:entry` (or
/// `:return`), a uprobe on a function of a file the target maps; MODULE
/// empty searches every file the target's interpreter links.
fn pid_probe(
    p: &mut Parser<'_>,
    pid: &str,
    [module, function, name]: [&str; 3],
    span: Span,
) -> PResult<Vec<ProbePoint>> {
    check_provider(p, "pid", &format!("pid{pid}"), span)?;
    if pid.is_empty() || pid.contains('*') {
        return Err(Diagnostic::error(
            span,
            "the pid provider probes one process: write pid$target (with -c or -p) or pidPID",
        ));
    }
    if function.is_empty() || function == "*" {
        return Err(Diagnostic::error(
            span,
            "a pid probe names its function: `pid$target::clock_nanosleep:entry`",
        )
        .hint("every function of every file would be tens of thousands of uprobes"));
    }
    let ret = match name {
        "entry" => false,
        "return" => true,
        _ => {
            return Err(Diagnostic::error(
                span,
                format!("pid probes are a function's `entry` or `return`, not `{name}`"),
            )
            .hint("offsets into a function (`pid$target::f:4`) are not supported"));
        }
    };
    let mut components = vec![comp("process", None, span)];
    if !module.is_empty() && module != "*" {
        components.push(comp(
            "library",
            Some(Literal::Str(module.as_bytes().to_vec())),
            span,
        ));
    }
    components.push(comp(
        "function",
        Some(Literal::Str(function.as_bytes().to_vec())),
        span,
    ));
    if ret {
        components.push(comp("return", None, span));
    }
    let mut probe = point(components, span);
    probe.optional = p.opts.zdefs;
    Ok(vec![probe])
}

/// `python`, `python*`, `python$target`, `python1234`, `python$1`, or
/// empty: the target's interpreter (`pid…` likewise for the pid provider).
fn check_provider(p: &mut Parser<'_>, name: &str, provider: &str, span: Span) -> PResult<()> {
    if provider.is_empty() || provider == "*" {
        return Ok(());
    }
    let Some(rest) = provider.strip_prefix(name) else {
        return Err(Diagnostic::error(
            span,
            format!(
                "pytap has the `python` provider's probes (`python$target:::function-entry`) and the `pid` provider's (`pid$target::clock_nanosleep:entry`), not `{provider}`"
            ),
        ));
    };
    let pid = if rest.is_empty() || rest.chars().all(|c| c == '*') || rest == "$target" {
        return Ok(());
    } else if let Some(arg) = rest.strip_prefix('$') {
        let value = arg
            .parse::<usize>()
            .ok()
            .and_then(|n| p.opts.macro_args.get(n.wrapping_sub(1)).cloned())
            .ok_or_else(|| {
                Diagnostic::error(
                    span,
                    format!("`${arg}` in `{provider}` is not a macro argument given"),
                )
            })?;
        value.parse::<i64>().map_err(|_| {
            Diagnostic::error(
                span,
                format!("`{provider}` needs a process id, and ${arg} is `{value}`"),
            )
        })?
    } else {
        rest.parse::<i64>().map_err(|_| {
            Diagnostic::error(
                span,
                format!("`{provider}` is not a {name} provider: write {name}$target, {name}PID or {name}*"),
            )
        })?
    };
    p.out.pids.push((pid, span));
    Ok(())
}

/// `profile-997` (hertz), `profile-10ms`, `profile-1sec`: a probe on
/// every CPU at that rate, as the point `profile(HZ)`.
fn profile(spec: &str, span: Span) -> PResult<ProbePoint> {
    let bad = || {
        Diagnostic::error(
            span,
            format!(
                "`profile-{spec}` is not a profile probe: write profile-997, profile-10ms, profile-100hz"
            ),
        )
    };
    let digits = spec.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = spec.split_at(digits);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ns_per: u64 = match unit {
        "" | "hz" => 0,
        "ns" | "nsec" => 1,
        "us" | "usec" => 1_000,
        "ms" | "msec" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        _ => return Err(bad()),
    };
    let hz = match ns_per {
        0 => n,
        per => 1_000_000_000 / n.saturating_mul(per).max(1),
    };
    if n == 0 || hz == 0 {
        return Err(Diagnostic::error(
            span,
            format!(
                "`profile-{spec}` fires less than once a second: profile probes run 1 to 100000 times a second (use tick-N for slower timers)"
            ),
        ));
    }
    Ok(point(
        vec![comp("profile", Some(Literal::Num(hz as i64)), span)],
        span,
    ))
}

/// `tick-1sec`, `tick-100ms`, `tick-10hz`, `tick-5` (hertz).
fn tick(spec: &str, span: Span) -> PResult<ProbePoint> {
    let digits = spec.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = spec.split_at(digits);
    let bad = || {
        Diagnostic::error(
            span,
            format!("`tick-{spec}` is not a tick probe: write tick-1sec, tick-100ms, tick-10hz"),
        )
    };
    let n: i64 = n.parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(bad());
    }
    let (unit, n) = match unit {
        "" | "hz" => ("hz", n),
        "ns" | "nsec" => ("ns", n),
        "us" | "usec" => ("us", n),
        "ms" | "msec" => ("ms", n),
        "s" | "sec" => ("s", n),
        "m" | "min" => ("s", n.saturating_mul(60)),
        "h" | "hour" => ("s", n.saturating_mul(3600)),
        "d" | "day" => ("s", n.saturating_mul(86400)),
        _ => return Err(bad()),
    };
    Ok(point(
        vec![
            comp("timer", None, span),
            comp(unit, Some(Literal::Num(n)), span),
        ],
        span,
    ))
}
