//! The pytap binary on real files: every fixture interpreter, Debian's
//! libpython, a patchelf'ed copy, and hostile inputs; and the files pytap
//! writes read by other tools (`go tool pprof`).

mod args;
mod dump_bpf;
mod dumps;
mod hostile;
mod info;
mod layouts;
mod linetables;
mod list;
mod manual;
mod pprof;
mod twins;
