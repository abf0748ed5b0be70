//! The scripts' userspace half, shared by `pytap stap` and `pytap dtrace`:
//! a script's sources compiled and placed ([`compile`]), and the run of
//! what the placement left to pytap ([`runtime`]: records from the kernel
//! probes evaluated and printed, `begin`, timers and `end`, marker probes
//! on the in-process capture's events), over the globals as the
//! interpreter sees them ([`store`]), the stacks the probes walked, named
//! ([`stacks`]), and the context its bodies read ([`context`]). D's run-time parts are here too: the probes' names and
//! numbers ([`probes`], which `pytap dtrace -l` lists) and what D prints
//! that SystemTap does not ([`dtrace`]). A script that attaches nothing
//! runs in [`userspace`].
//!
//! What runs in the kernel is `engine::codegen::script`'s; the
//! subcommands, their requests and the binding of probes to binaries are
//! `tool::stap` and `tool::dtrace`'s.

pub mod compile;
mod context;
pub mod dtrace;
pub mod probes;
pub mod runtime;
pub mod stacks;
pub mod store;
pub mod userspace;
