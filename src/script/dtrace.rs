//! What a D program's run prints that SystemTap's does not: the header
//! of non-quiet mode's firing lines and, at the end, the aggregations
//! `printa` has not printed, as dtrace prints them.

use pytap_script::dtrace::aggprint;
use pytap_script::interp::{Interp, RunError, World};
use pytap_script::ir::Program;

/// The header dtrace prints before the first firing when not quiet (the
/// runtime writes it before the first output).
pub const HEADER: &str = "CPU     ID                    FUNCTION:NAME\n";

/// The end of a D run: dtrace's `"\n"`, then every aggregation `printa`
/// has not printed, in order of first use.
pub fn print_remaining(
    interp: &mut Interp,
    program: &Program,
    world: &mut World<'_>,
) -> Result<(), RunError> {
    let mut text = vec![b'\n'];
    for (g, global) in program.globals.iter().enumerate() {
        if global.agg.is_none() || interp.printed.contains(&g) {
            continue;
        }
        let entries = interp.aggregation(program, g, world, global.span)?;
        let normal = interp.normal.get(&g).copied().unwrap_or(1);
        aggprint::print(global, entries, normal, None, &mut text).map_err(|e| RunError {
            span: global.span,
            message: e.into(),
        })?;
    }
    world.out.write(&text);
    Ok(())
}
