//! The outputs of a sampled profile ([`crate::model::profile::Profile`]):
//! folded stacks, an SVG flame graph, speedscope, pprof and Perfetto
//! (pure: each
//! writes one file to the writer it is given, once the profile is
//! complete). The live top view's table is [`crate::output::profile`]'s.
//!
//! They name frames and threads as the timeline exports do
//! ([`crate::model::label`]: a frame is `function (file:line)`, a thread
//! `NAME (pid P, tid T)`), where a format has one string for a frame; and
//! where a format holds a number per stack, it is the profile's
//! [`crate::model::profile::Unit`]: samples, or nanoseconds in `wall`
//! mode, where samples weigh what their thread slept. speedscope and
//! pprof, which carry units, always give nanoseconds (pprof: samples too).

pub mod folded;
pub mod perfetto;
pub mod pprof;
pub mod speedscope;
pub mod svg;

use std::io::Write;

use anyhow::Result;

use crate::model::profile::Profile;

/// What a profile is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFormat {
    /// Folded stacks, one line per stack of a thread ([`folded`]).
    Folded,
    /// An SVG flame graph ([`svg`]).
    Svg,
    /// speedscope's JSON, one sampled profile per thread ([`speedscope`]).
    Speedscope,
    /// pprof's gzipped protobuf ([`pprof`]).
    Pprof,
    /// A Perfetto trace of every sample in time ([`perfetto`]).
    Perfetto,
}

/// Writes `profile` as `format` to `out`; `name` names the profile where
/// the format has a name (speedscope's file name, the SVG's title).
pub fn write(
    profile: &Profile,
    format: ProfileFormat,
    name: &str,
    out: &mut dyn Write,
) -> Result<()> {
    match format {
        ProfileFormat::Folded => folded::write(profile, out),
        ProfileFormat::Svg => svg::write(profile, name, out),
        ProfileFormat::Speedscope => speedscope::write(profile, name, out),
        ProfileFormat::Pprof => pprof::write(profile, out),
        ProfileFormat::Perfetto => perfetto::write(profile, out),
    }
}
