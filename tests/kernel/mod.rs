//! Live processes and BPF, as root. Each test starts with
//! `require_kernel()`, which fails (never skips) when root or a kernel
//! interface is missing.

mod clobber;
mod dtrace;
mod dump;
mod export;
mod filters;
mod generators;
mod harm;
mod in_process;
mod lifecycle;
mod live_list;
mod names;
mod output;
mod profile;
mod profile_recording;
mod recording;
mod rough;
mod sampler;
mod script_functions;
mod script_profile;
mod script_stacks;
mod sent_once;
mod stap;
mod streams;
mod targets;
mod terminal;
mod tools;
mod trace;
mod trace_stacks;
mod trees;
mod unmarked;
