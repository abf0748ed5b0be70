//! The SystemTap front end: `.stp` text to [`crate::ast`].
//!
//! A hand-written recursive-descent parser over [`crate::lexer`] tokens,
//! following SystemTap's own grammar and operator precedence (its
//! `parse.cxx`): `.` binds looser than `+`, `in` sits between the bit
//! operators and comparisons, statements end with an optional `;`. Forms
//! SystemTap has and pytap does not (embedded C, the preprocessor,
//! `try`/`catch`, `@cast`, regular expressions, array slices) are parsed
//! far enough to be named in the error instead of failing on them.

mod calls;
mod expr;
mod parser;
mod stmt;

pub use parser::parse;
