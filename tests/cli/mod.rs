//! The pytap binary on real files: every fixture interpreter, Debian's
//! libpython, a patchelf'ed copy, and hostile inputs.

mod args;
mod dump_bpf;
mod dumps;
mod hostile;
mod info;
mod layouts;
mod linetables;
mod list;
mod manual;
mod twins;
