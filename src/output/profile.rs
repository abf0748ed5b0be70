//! The top table of a sampled profile, for the live view and the text
//! output: one row per function ([`Profile::functions`]: own samples, as
//! the innermost frame, and total, anywhere on the stack, once per
//! sample), with their shares of all samples, sorted by own then total.
//!
//! Counts are the profile's unit: samples, or in `wall` mode milliseconds
//! (`OWN(ms)`, `TOTAL(ms)`). Columns are aligned as [`Table`] aligns them;
//! the last, `FUNCTION (FILE)`, is escaped for the terminal and shortened
//! in the middle to fit the width. Pure: lines in, no I/O.

use crate::model::label::sampled_frame;
use crate::model::profile::{Profile, Unit};
use crate::output::escape;
use crate::output::fit;
use crate::output::table::{Align, Table};

/// The function column keeps at least this many characters, however
/// narrow the width.
const MIN_FUNCTION: usize = 20;

/// The header and up to `rows` rows (0: every function) of `profile`'s top
/// table, each line fitting `width` characters where a width is given
/// (the function shortened; never below [`MIN_FUNCTION`] of it).
pub fn top_lines(profile: &Profile, width: Option<usize>, rows: usize) -> Vec<String> {
    let functions = profile.functions();
    let shown = if rows == 0 {
        &functions[..]
    } else {
        &functions[..functions.len().min(rows)]
    };
    let all = profile.value(profile.totals());
    let (own, total) = match profile.unit() {
        Unit::Samples => ("OWN", "TOTAL"),
        Unit::Nanoseconds => ("OWN(ms)", "TOTAL(ms)"),
    };
    let count = |n: u64| match profile.unit() {
        Unit::Samples => n.to_string(),
        Unit::Nanoseconds => format!("{:.1}", n as f64 / 1e6),
    };
    let share = |n: u64| format!("{:.1}%", n as f64 * 100.0 / all.max(1) as f64);
    let mut table = Table::new(&[
        (own, Align::Right),
        ("OWN%", Align::Right),
        (total, Align::Right),
        ("TOTAL%", Align::Right),
        ("FUNCTION (FILE)", Align::Left),
    ]);
    for f in shown {
        let (o, t) = (profile.value(f.own), profile.value(f.total));
        let function = escape::text(&f.function);
        let file = escape::text(&f.file);
        let name = sampled_frame(&function, &file, 0);
        table.row(vec![count(o), share(o), count(t), share(t), name]);
    }
    let text = table.render();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let Some(width) = width else {
        return lines;
    };
    // Every line's function starts where the header's does.
    let at = lines
        .first()
        .and_then(|h| h.find("FUNCTION"))
        .map_or(0, |i| fit::width_of(&lines[0][..i]));
    let room = width.saturating_sub(at).max(MIN_FUNCTION);
    for line in &mut lines {
        let start: String = line.chars().take(at).collect();
        let function: String = line.chars().skip(at).collect();
        *line = start + &fit::middle(&function, room);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::profile::testing::{self, MAIN};
    use crate::model::profile::{Frame, FrameKind, Mode};

    #[test]
    fn own_then_total_with_shares() {
        let lines = top_lines(&testing::profile(), None, 0);
        assert_eq!(
            lines,
            [
                "OWN   OWN%  TOTAL  TOTAL%  FUNCTION (FILE)",
                "  3  42.9%      3   42.9%  fib (app.py)",
                "  2  28.6%      2   28.6%  PyObject_Call (/usr/lib/libpython3.11.so)",
                "  1  14.3%      3   42.9%  naïve;λ (ünï.py)",
                "  1  14.3%      1   14.3%  <unknown 0x7f00>",
                "  0   0.0%      5   71.4%  <module> (app.py)",
            ]
        );
    }

    #[test]
    fn recursion_counts_once_and_wall_mode_shows_milliseconds() {
        let mut p = Profile::new(Mode::Wall, 100);
        let f = p.intern(Frame {
            function: "f".into(),
            file: "a.py".into(),
            line: 1,
            kind: FrameKind::Python,
        });
        let g = p.intern(Frame {
            function: "g".into(),
            file: "a.py".into(),
            line: 5,
            kind: FrameKind::Python,
        });
        // f recursing into itself three times, then g: f's total is the
        // samples' time, not three times it.
        p.add(MAIN, &[g, f, f, f], 1_500_000, 0);
        p.add(MAIN, &[f, f], 500_000, 0);
        assert_eq!(
            top_lines(&p, None, 0),
            [
                "OWN(ms)   OWN%  TOTAL(ms)  TOTAL%  FUNCTION (FILE)",
                "    1.5  75.0%        1.5   75.0%  g (a.py)",
                "    0.5  25.0%        2.0  100.0%  f (a.py)",
            ]
        );
    }

    #[test]
    fn rows_are_limited_and_fit_the_width_escaped() {
        let mut p = Profile::new(Mode::Cpu, 100);
        let long = p.intern(Frame {
            function: "\u{1b}[31mred".into(),
            file: "/very/long/path/to/some/module/file.py".into(),
            line: 1,
            kind: FrameKind::Python,
        });
        let short = p.intern(Frame {
            function: "s".into(),
            file: "b.py".into(),
            line: 1,
            kind: FrameKind::Python,
        });
        p.add(MAIN, &[long], 1, 0);
        p.add(MAIN, &[long], 1, 0);
        p.add(MAIN, &[short], 1, 0);
        let lines = top_lines(&p, Some(60), 1);
        assert_eq!(
            lines,
            [
                "OWN   OWN%  TOTAL  TOTAL%  FUNCTION (FILE)",
                "  2  66.7%      2   66.7%  \\x1b[31mred (/ve…/module/file.py)",
            ]
        );
        assert!(lines.iter().all(|l| fit::width_of(l) <= 60));
        // Too narrow: the function keeps its minimum.
        let narrow = top_lines(&p, Some(10), 0);
        assert_eq!(narrow[2], "  1  33.3%      1   33.3%  s (b.py)");
        assert_eq!(fit::width_of(&narrow[1]), 27 + MIN_FUNCTION);
        assert_eq!(top_lines(&Profile::new(Mode::Cpu, 1), Some(80), 0).len(), 1);
    }
}
