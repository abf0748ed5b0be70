//! A profile's SVG flame graph: its folded stacks ([`super::folded`]),
//! one root per thread, drawn by inferno as the timeline's SVG export is
//! ([`crate::export::flame`]). The title gives the mode, the rate and the
//! samples; the subtitle, the profile's name; a frame's number is the
//! profile's unit (samples, or ns in `wall` mode).

use std::io::{BufWriter, Write};

use anyhow::Result;

use super::folded;
use crate::export::flame::{self, Graph};
use crate::model::profile::{Profile, Unit};

/// The flame graph's title: `pytap profile (MODE, RATE Hz, N samples)`.
pub fn title(profile: &Profile) -> String {
    format!(
        "pytap profile ({}, {} Hz, {} samples)",
        profile.mode.name(),
        profile.rate_hz,
        profile.samples()
    )
}

/// Writes `profile` as an SVG flame graph to `out`, with `name` (a
/// command, a pid; empty: none) under the title. A profile without
/// samples has nothing to draw: an error.
pub fn write(profile: &Profile, name: &str, out: &mut dyn Write) -> Result<()> {
    let lines = folded::lines(profile);
    if lines.is_empty() {
        anyhow::bail!("no samples to draw a flame graph of: the profile is empty");
    }
    let graph = Graph {
        title: title(profile),
        subtitle: Some(name.to_owned()).filter(|n| !n.is_empty()),
        count_name: match profile.unit() {
            Unit::Samples => "samples",
            Unit::Nanoseconds => "ns",
        },
        flame_chart: false,
    };
    let mut out = BufWriter::new(out);
    flame::draw(&lines, &graph, &mut out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::profile::Mode;
    use crate::model::profile::testing;

    fn svg(profile: &Profile, name: &str) -> Result<String> {
        let mut out = Vec::new();
        write(profile, name, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn a_profile_becomes_a_flame_graph() -> Result<()> {
        let svg = svg(&testing::profile(), "python3 app.py <&>")?;
        assert!(svg.starts_with("<?xml"));
        assert!(
            svg.contains(">pytap profile (cpu, 100 Hz, 7 samples)<"),
            "{svg}"
        );
        assert!(svg.contains(">python3 app.py &lt;&amp;&gt;<"), "{svg}");
        // Each frame's tooltip: its text, its samples and their share.
        for (frame, n, share) in [
            ("MainThread (pid 42, tid 42)", 5, "71.43"),
            ("python3 (pid 42, tid 43)", 2, "28.57"),
            ("&lt;module&gt; (app.py:10)", 5, "71.43"),
            ("fib (app.py:3)", 3, "42.86"),
            // Once under the main thread's `<module>`, once the other's root.
            ("naïve:λ (ünï.py:7)", 1, "14.29"),
            ("naïve:λ (ünï.py:7)", 2, "28.57"),
            ("&lt;unknown 0x7f00&gt;", 1, "14.29"),
            ("PyObject_Call (/usr/lib/libpython3.11.so)", 2, "28.57"),
        ] {
            let title = format!("<title>{frame} ({n} samples, {share}%)</title>");
            assert!(svg.contains(&title), "{title} not in {svg}");
        }
        Ok(())
    }

    #[test]
    fn wall_mode_counts_nanoseconds_and_empty_is_an_error() -> Result<()> {
        let mut p = testing::profile();
        p.mode = Mode::Wall;
        let svg = svg(&p, "")?;
        assert!(svg.contains("pytap profile (wall, 100 Hz, 7 samples)"));
        assert!(
            svg.contains("<title>fib (app.py:3) (30,000,000 ns, 42.86%)</title>"),
            "{svg}"
        );
        assert!(write(&Profile::new(Mode::Cpu, 100), "", &mut Vec::new()).is_err());
        Ok(())
    }
}
