//! The SVG export: a flame graph (or, with `--flame-chart`, a flame chart)
//! of the folded stacks of [`super::folded`], rendered at the end by the
//! inferno crate (CDDL-1.0).
//!
//! [`draw`] is also what a profile's flame graph is drawn with
//! ([`super::profile::svg`]).
//!
//! Memory is that of the folded aggregation: distinct stacks, or every
//! line in flame-chart mode.

use std::io::Write;

use anyhow::Result;
use inferno::flamegraph::{self, Options};

use super::Weight;
use super::folded::FoldedSink;
use crate::model::slice::{End, Item, Sink, Thread};
use crate::model::stack::Frame;
use crate::recording::StringTable;

/// The SVG sink: aggregates like [`FoldedSink`], renders at
/// [`Sink::finish`].
pub struct SvgSink {
    out: Box<dyn Write>,
    title: String,
    weight: Weight,
    flame_chart: bool,
    folded: FoldedSink,
}

impl std::fmt::Debug for SvgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvgSink")
            .field("title", &self.title)
            .field("folded", &self.folded)
            .finish_non_exhaustive()
    }
}

impl SvgSink {
    /// A sink writing an SVG titled `pytap: <title>` to `out`, weighted by
    /// `weight`; with `flame_chart`, a flame chart (time left to right,
    /// stacks not merged) instead of a flame graph.
    pub fn new(out: Box<dyn Write>, title: String, weight: Weight, flame_chart: bool) -> Self {
        SvgSink {
            out,
            title,
            weight,
            flame_chart,
            folded: FoldedSink::collecting(weight, flame_chart),
        }
    }
}

/// Renders folded `lines` (sorted, or in time order for a flame chart) as
/// an SVG to `out`.
pub fn render(
    lines: &[String],
    title: &str,
    weight: Weight,
    flame_chart: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if lines.is_empty() {
        // inferno would draw an error message and fail.
        anyhow::bail!("no stacks to draw: the recording has no slices");
    }
    let count_name = match weight {
        Weight::Time => "ns",
        Weight::Calls => "calls",
    };
    let graph = Graph {
        title: format!("pytap: {title}"),
        subtitle: None,
        count_name,
        flame_chart,
    };
    draw(lines, &graph, out)
}

/// What a flame graph says around its frames.
#[derive(Debug, Clone)]
pub struct Graph<'a> {
    /// Its title.
    pub title: String,
    /// The line under the title, if any.
    pub subtitle: Option<String>,
    /// What a frame's number counts (`ns`, `samples`).
    pub count_name: &'a str,
    /// A flame chart (`lines` in time order) instead of a flame graph.
    pub flame_chart: bool,
}

/// Draws folded `lines` (not empty: inferno fails on none) with inferno.
pub fn draw(lines: &[String], graph: &Graph<'_>, out: &mut dyn Write) -> Result<()> {
    let mut options = Options::default();
    options.title = graph.title.clone();
    options.subtitle = graph.subtitle.clone();
    options.count_name = graph.count_name.to_owned();
    options.flame_chart = graph.flame_chart;
    if graph.flame_chart {
        // inferno lays a flame chart's lines out from the right: give them
        // newest first, so that time goes left to right.
        flamegraph::from_lines(&mut options, lines.iter().rev().map(String::as_str), out)?;
    } else {
        flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)?;
    }
    Ok(())
}

impl Sink for SvgSink {
    fn process(&mut self, pid: u32, name: &str) -> Result<()> {
        self.folded.process(pid, name)
    }

    fn thread(&mut self, thread: Thread, name: &str) -> Result<()> {
        self.folded.thread(thread, name)
    }

    fn begin(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        strings: &StringTable,
    ) -> Result<()> {
        self.folded.begin(thread, ts_ns, stack, strings)
    }

    fn end(
        &mut self,
        thread: Thread,
        ts_ns: u64,
        stack: &[Frame<Item>],
        how: &End,
        strings: &StringTable,
    ) -> Result<()> {
        self.folded.end(thread, ts_ns, stack, how, strings)
    }

    fn finish(&mut self, _strings: &StringTable) -> Result<()> {
        let lines = self.folded.take_lines();
        render(
            &lines,
            &self.title,
            self.weight,
            self.flame_chart,
            &mut self.out,
        )?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::testing::Shared;

    /// The x of the `<rect>` of the frame whose title starts with `name`.
    fn x_of(svg: &str, name: &str) -> Option<f64> {
        let at = svg.find(&format!("<title>{name}"))?;
        let rest = &svg[at..];
        let x = rest.find("x=\"")? + 3;
        let end = rest[x..].find('"')?;
        rest[x..x + end].trim_end_matches('%').parse().ok()
    }

    fn svg(lines: &[&str], flame_chart: bool) -> Result<String> {
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let mut out = Vec::new();
        render(&lines, "demo", Weight::Time, flame_chart, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn a_timeline_becomes_an_svg() -> Result<()> {
        let mut s = StringTable::default();
        let (outer, inner, file) = (s.push(b"outer"), s.push(b"inner<&>"), s.push(b"/a.py"));
        let call = |funcname| Frame {
            func: Item::Call(crate::model::slice::Call {
                funcname,
                filename: file,
                lineno: 7,
            }),
            line: 7,
            entered_ns: 0,
            child_ns: 0,
        };
        let (outer, inner) = (call(outer), call(inner));
        let t = Thread { pid: 3, tid: 4 };
        for flame_chart in [false, true] {
            let out = Shared::default();
            let mut sink = SvgSink::new(
                Box::new(out.clone()),
                "x".into(),
                Weight::Calls,
                flame_chart,
            );
            sink.begin(t, 10, std::slice::from_ref(&outer), &s)?;
            sink.begin(t, 20, &[outer.clone(), inner.clone()], &s)?;
            sink.end(t, 30, &[outer.clone(), inner.clone()], &End::Returned, &s)?;
            sink.end(t, 40, std::slice::from_ref(&outer), &End::Unfinished, &s)?;
            sink.finish(&s)?;
            let svg = String::from_utf8(out.0.borrow().clone())?;
            assert!(svg.contains("pytap: x"));
            assert!(svg.contains("<title>outer (/a.py:7) (2 calls, "), "{svg}");
            assert!(svg.contains("<title>inner&lt;&amp;&gt; (/a.py:7) (1 calls, "));
        }
        Ok(())
    }

    #[test]
    fn flame_graph_has_the_functions() -> Result<()> {
        let svg = svg(&["main;first 30", "main;second 10"], false)?;
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("pytap: demo"));
        for name in ["main", "first", "second"] {
            assert!(svg.contains(&format!("<title>{name} (")), "{name}");
        }
        assert!(svg.contains(" ns, "));
        Ok(())
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        assert!(svg(&[], false).is_err());
    }

    #[test]
    fn flame_chart_time_goes_left_to_right() -> Result<()> {
        let svg = svg(&["main;first 10", "main;second 30"], true)?;
        let (Some(a), Some(b)) = (x_of(&svg, "first"), x_of(&svg, "second")) else {
            panic!("no frames in {svg}");
        };
        assert!(a < b, "{a} {b}");
        Ok(())
    }
}
