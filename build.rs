//! Builds pytap's compiled in-process callback (`crates/agent-ext`, a
//! CPython extension module on the stable ABI) with the same cargo, into
//! this build's output directory, so the pytap binary carries it
//! (`capture::EXTENSION`). No C compiler: it is Rust, and it declares the
//! few CPython and C library functions it calls.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ext = manifest.join("crates/agent-ext");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let target_dir = out.join("agent-ext");
    println!("cargo:rerun-if-changed=crates/agent-ext/src");
    println!("cargo:rerun-if-changed=crates/agent-ext/Cargo.toml");
    println!("cargo:rerun-if-changed=crates/abi/src");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(ext.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's settings are not the extension's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("running cargo to build crates/agent-ext");
    assert!(status.success(), "building crates/agent-ext failed");
    let built = target_dir.join("release/lib_pytap_agent.so");
    std::fs::copy(&built, out.join("_pytap_agent.abi3.so"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
}
