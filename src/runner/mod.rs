//! Running a tool: the path every tool shares from its request to its exit
//! code ([`tool_run`]: the capture's choice, the agents, the hazard checks,
//! the plan, the session, the report), and the one event loop that feeds a
//! [`Consumer`](crate::engine::consumer::Consumer) ([`pump`]) over its
//! [`source`]s: the kernel's rings ([`kernel`]), the stacks of their
//! events ([`stacks`]), the in-process capture ([`captured`]), a recording
//! ([`recorded`]), merged by timestamp. Its
//! drivers say when to run a pass: live ([`live`]) or to a recording's end
//! ([`replay`]).

pub mod capture_path;
pub mod captured;
pub mod kernel;
pub mod live;
pub mod pump;
pub mod recorded;
pub mod replay;
pub mod report;
pub mod sampling;
pub mod source;
pub mod stacks;
pub mod tool_run;
