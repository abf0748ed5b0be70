//! Rendering shared by every tool: tables and JSON helpers.

pub mod event;
pub mod hist;
pub mod quantile;
pub mod table;

pub use table::{Align, Table, hex};
