//! Tests that need the machine to themselves: pytap at the full rate
//! CPython reaches (about 1.4 million events a second, where a consumer
//! that shares its CPU with other tests would fall behind) and long soaks.
//! Cargo runs test binaries one after another, so nothing of the
//! `integration` binary runs beside these; within this binary each test
//! holds `harness::alone()` for its whole run. Like the `integration`
//! binary's `kernel` tests they run as root and never skip.

#[path = "harness/mod.rs"]
mod harness;

#[path = "machine/mod.rs"]
mod kernel;
