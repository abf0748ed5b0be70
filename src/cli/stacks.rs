//! The flags of the tools that read Python stacks from memory: `dump`
//! (and, beside it, the sampler's `profile`).

use clap::Args;

use super::FormatArg;

/// `pytap dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// A running process (repeat for several)
    #[arg(
        short,
        long = "pid",
        value_name = "PID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub pids: Vec<u32>,
    /// Every Python process on the machine (those pytap cannot read are skipped)
    #[arg(long)]
    pub all: bool,
    /// Output format (JSON schema: docs/output.md)
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Frames per thread at most
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_depth: usize,
}
