//! The engine: BPF programs generated for CPython's markers, attached to
//! every marker site, and the events they stream back.
//!
//! - [`abi`]: the record layouts shared by the code generator and decoder.
//! - [`codegen`]: programs per module (cookie dispatch, argument loading,
//!   handlers that say what to do per marker).
//! - [`decode`]: records back into typed events; [`names`]: names of the
//!   function records sent without them; [`recover`]: strings the probe
//!   could not read, from the binary.
//! - [`plan`]: which sites to attach (and arm) per module, pure, for a
//!   [`plan::PlanRequest`];
//!   [`session`]: maps, programs and links, loaded and attached.
//! - [`follow`]: the processes a run follows (a command's tree with
//!   ptrace, pids), and what their forks, execs and exits do to the probes;
//! - [`consumer`]: what receives a run's events, and why a run ends;
//!   [`source`]: what a consumer may ask about them (the event loop that
//!   feeds them is `runner`'s);
//!   [`tasks`]: the traced threads' names as of each event; [`streams`]:
//!   the kernel's ring buffer and per-CPU rings, merged by timestamp;
//!   [`stack_pairing`]: events paired with the stacks their programs
//!   walked (`trace --stacks`).

pub mod abi;
pub mod capture_mode;
pub mod codegen;
pub mod consumer;
pub mod decode;
pub mod follow;
pub mod hazard;
pub mod names;
pub mod plan;
pub mod recover;
pub mod sampler;
pub mod samples;
pub mod script_record;
pub mod session;
pub mod source;
pub mod stack_pairing;
pub mod streams;
pub mod tasks;
