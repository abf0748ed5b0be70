//! `pytap export`: a recording replayed once, front to back, through the
//! timeline's feed into one format's sink; memory does not grow with the
//! recording's length (see each format for what it keeps).
//!
//! A recording of samples (`pytap record --profile`, its start metadata
//! says so) is replayed into a profile instead and written as `pytap
//! profile --format` writes one, byte for byte. A recording that holds
//! both (the format allows it; `record` writes one or the other today) is
//! exported from its events, which are exact, when it recorded markers;
//! its samples stay for `pytap profile -i`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cpython::Marker;
use crate::error::ExitCode;
use crate::export::chrome::ChromeSink;
use crate::export::flame::SvgSink;
use crate::export::folded::FoldedSink;
use crate::export::perfetto::PerfettoSink;
use crate::export::profile::{self as profile_formats, ProfileFormat};
use crate::export::speedscope::SpeedscopeSink;
use crate::export::{ExportFormat, Weight};
use crate::model::feed::TimelineFeed;
use crate::model::slice::Sink;
use crate::model::timeline::{Timeline, TimelineStats};
use crate::notice;
use crate::recording::format::Meta;
use crate::runner::replay;

/// How an export is drawn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Folded stacks and flame graphs: what a stack weighs.
    pub weight: Weight,
    /// SVG: a flame chart.
    pub flame_chart: bool,
    /// Perfetto: stacks on gc, import and audit events.
    pub stacks: bool,
}

/// A name for the run: the recorded command, or the file's name.
fn run_name(start: Option<&Meta>, input: &Path) -> String {
    match start {
        Some(Meta::Start { target, .. }) if !target.is_empty() => target.join(" "),
        _ => input.display().to_string(),
    }
}

/// The sink of a format, writing to `out`.
fn make_sink(
    format: ExportFormat,
    style: Style,
    name: String,
    out: Box<dyn Write>,
) -> Result<Box<dyn Sink>> {
    Ok(match format {
        ExportFormat::Perfetto => Box::new(PerfettoSink::new(out, style.stacks)),
        ExportFormat::Chrome => Box::new(ChromeSink::new(out)),
        ExportFormat::Speedscope => Box::new(SpeedscopeSink::new(out, name)),
        ExportFormat::Folded => Box::new(FoldedSink::new(out, style.weight, style.flame_chart)),
        ExportFormat::Svg => Box::new(SvgSink::new(out, name, style.weight, style.flame_chart)),
        ExportFormat::Pprof => anyhow::bail!(
            "pprof is a sampled profile's format, and this recording holds traced events: \
             export them as perfetto, chrome, speedscope, folded or svg (or record samples \
             with pytap record --profile)"
        ),
    })
}

/// Whether the recording's start says it holds samples and no events
/// (see the module's docs for one that holds both).
pub fn holds_samples_only(start: Option<&Meta>) -> bool {
    matches!(
        start,
        Some(Meta::Start {
            profile: Some(_),
            markers,
            ..
        }) if markers.is_empty()
    )
}

/// A profile format for an export format of a recording of samples.
fn profile_format(format: ExportFormat, input: &Path) -> Result<ProfileFormat> {
    Ok(match format {
        ExportFormat::Perfetto => ProfileFormat::Perfetto,
        ExportFormat::Speedscope => ProfileFormat::Speedscope,
        ExportFormat::Folded => ProfileFormat::Folded,
        ExportFormat::Svg => ProfileFormat::Svg,
        ExportFormat::Pprof => ProfileFormat::Pprof,
        ExportFormat::Chrome => anyhow::bail!(
            "{} holds samples (pytap record --profile), which Chrome's trace format has no \
             place for: export them as perfetto, speedscope, folded, svg or pprof",
            input.display()
        ),
    })
}

/// Exports the samples of the recording at `input` as `format` to `out`,
/// as `pytap profile --format` would have written them: the samples
/// written.
fn export_profile(
    input: &Path,
    format: ExportFormat,
    style: Style,
    mut out: Box<dyn Write>,
) -> Result<u64> {
    let format = profile_format(format, input)?;
    if style.stacks || style.weight != Weight::Time || style.flame_chart {
        notice!(
            "--stacks, --weight and --flame-chart draw traced events; a recording of samples is \
             written as pytap profile writes it (ignored)"
        );
    }
    let replayed = replay::profile(input)?;
    profile_formats::write(&replayed.profile, format, "pytap profile", &mut out)?;
    Ok(replayed.profile.samples())
}

/// Exports the recording at `input` as `format` to `out`: the recording
/// replayed, every event, into the timeline's feed.
pub fn export(
    input: &Path,
    format: ExportFormat,
    style: Style,
    out: Box<dyn Write>,
) -> Result<TimelineStats> {
    // The start metadata names the run before the first event.
    let name = run_name(replay::start_of(input)?.as_ref(), input);
    let mut sink = make_sink(format, style, name, out)?;
    let mut feed = TimelineFeed::new(Timeline::new(sink.as_mut()));
    let every = Marker::ALL.into_iter().collect();
    let replay = replay::Replay {
        markers: &every,
        strict: false,
        tick: None,
        done: "exported",
    };
    replay::run(input, &mut feed, &replay)?;
    feed.stats()
        .cloned()
        .context("internal: the timeline did not finish")
}

/// The export's summary, on stderr.
pub fn report(stats: &TimelineStats, format: ExportFormat, out: &str) {
    let mut line = format!(
        "{} calls, {} gc collections, {} imports, {} audit events written to {out} ({})",
        stats.calls,
        stats.collections,
        stats.imports,
        stats.audits,
        format!("{format:?}").to_lowercase()
    );
    if stats.dropped_ends > 0 {
        line.push_str(&format!(
            "; {} returns whose entry came before the recording were dropped",
            stats.dropped_ends
        ));
    }
    if stats.unfinished > 0 {
        line.push_str(&format!(
            "; {} slices never ended and were closed, flagged unfinished",
            stats.unfinished
        ));
    }
    if stats.too_deep > 0 {
        line.push_str(&format!(
            "; {} slices deeper than {} were left out",
            stats.too_deep,
            crate::model::timeline::MAX_DEPTH
        ));
    }
    if stats.creations > 0 {
        line.push_str(&format!(
            "; {} generator creations left out (no frame runs)",
            stats.creations
        ));
    }
    notice!("{line}");
}

/// Says which drawing options the format does not use.
pub fn warn_unused_style(format: ExportFormat, style: Style) {
    let name = format!("{format:?}").to_lowercase();
    if style.stacks && format != ExportFormat::Perfetto {
        notice!("--stacks is for perfetto; {name} has no place for them (ignored)");
    }
    let flame = matches!(format, ExportFormat::Folded | ExportFormat::Svg);
    if style.weight != Weight::Time && !flame {
        notice!("--weight is for folded and svg; {name} has every slice's time (ignored)");
    }
    if style.flame_chart && !flame {
        notice!("--flame-chart is for folded and svg (ignored)");
    }
}

/// Runs `pytap export`.
pub fn run(
    input: &Path,
    format: ExportFormat,
    style: Style,
    output: Option<&Path>,
) -> Result<ExitCode> {
    // The input first: a missing or damaged recording leaves the output
    // as it was.
    drop(replay::open(input)?);
    let samples = holds_samples_only(replay::start_of(input)?.as_ref());
    let mut replacement = None;
    let (out, shown): (Box<dyn Write>, String) = match output {
        Some(path) if path != Path::new("-") => {
            if crate::output::replace::same_file(input, path) {
                anyhow::bail!(
                    "{}: the output is the recording itself: give another -o",
                    path.display()
                );
            }
            let r = crate::output::replace::OutputFile::create(path)?;
            let file = r.writer()?;
            replacement = Some(r);
            (
                Box::new(std::io::BufWriter::with_capacity(1 << 20, file)),
                path.display().to_string(),
            )
        }
        _ => {
            if matches!(format, ExportFormat::Perfetto | ExportFormat::Pprof)
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
            {
                anyhow::bail!(
                    "a {} file is binary: write it to a file with -o FILE (or redirect stdout)",
                    format!("{format:?}").to_lowercase()
                );
            }
            (
                Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::io::stdout(),
                )),
                "stdout".into(),
            )
        }
    };
    if samples {
        let written = export_profile(input, format, style, out)?;
        if let Some(r) = &mut replacement {
            r.commit()?;
        }
        let format = format!("{format:?}").to_lowercase();
        notice!("{written} samples written to {shown} ({format})");
        return Ok(if written == 0 {
            ExitCode::NothingTraced
        } else {
            ExitCode::Ok
        });
    }
    warn_unused_style(format, style);
    let stats = export(input, format, style, out)?;
    if let Some(r) = &mut replacement {
        r.commit()?;
    }
    report(&stats, format, &shown);
    Ok(
        if stats.calls + stats.collections + stats.imports + stats.audits == 0 {
            ExitCode::NothingTraced
        } else {
            ExitCode::Ok
        },
    )
}
