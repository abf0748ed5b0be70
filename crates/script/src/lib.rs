//! pytap's script language.
//!
//! Scripts in SystemTap's language (and, later, D) compile here into one
//! [`ir::Program`] that pytap's engine lowers onto BPF and runs. This crate
//! is pure: no files, no kernel. It owns
//!
//! - [`source`], [`diag`]: files, spans and diagnostics with carets;
//! - [`lexer`], [`ast`], [`stap`]: tokens, the syntax tree and the
//!   SystemTap front end;
//! - [`tapset`]: pytap's built-in `python` tapset;
//! - [`check`]: probe aliases, name resolution and type inference, into
//!   [`ir`], the compiled form; [`builtins`]: the functions scripts call;
//! - [`value`], [`format`], [`hist`]: values, SystemTap's printf and its
//!   statistics' histograms;
//! - [`interp`], [`store`]: the interpreter that runs `begin`, `end` and
//!   timer bodies (and probe bodies on events that do not come from BPF),
//!   and where it finds globals.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ast;
pub mod builtins;
pub mod check;
pub mod cursor;
pub mod diag;
pub mod dtrace;
pub mod format;
pub mod hist;
pub mod interp;
pub mod ir;
pub mod lexer;
pub mod source;
pub mod stap;
pub mod store;
pub mod tapset;
pub mod value;
