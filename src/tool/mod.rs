//! pytap's subcommands. Each tool is a plain function from a validated
//! request to output; they share target handling ([`crate::process`]),
//! rendering ([`crate::output`]) and, for the tracing tools, the engine.

pub mod audit;
pub mod calls;
pub mod dtrace;
pub mod dump;
pub mod export;
pub mod filter;
pub mod flow;
pub mod gc;
pub mod imports;
pub mod info;
pub mod list;
pub mod names;
pub mod profile;
pub mod record;
pub mod stap;
pub mod top;
pub mod top_live;
pub mod trace;
