//! Running a tool: the path every tool shares from its request to its exit
//! code ([`tool_run`]: the capture's choice, the agents, the hazard checks,
//! the plan, the session, the report), and the loops that feed a
//! [`Consumer`](crate::engine::consumer::Consumer): live, over the kernel's
//! rings and the in-process capture merged by timestamp ([`live`]), or
//! from a recording ([`replay`]).

pub mod live;
pub mod replay;
pub mod tool_run;
