//! Rendering shared by every tool: where output goes ([`sink`]), notices on
//! stderr ([`notice`]), tables, histograms, a profile's top table
//! ([`profile`]) and JSON helpers.

pub mod escape;
pub mod event;
pub mod fit;
pub mod hist;
pub mod notice;
pub mod profile;
pub mod quantile;
pub mod replace;
pub mod sink;
pub mod table;

pub use table::{Align, Table, hex};
