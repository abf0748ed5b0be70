//! Waiting on conditions, and what is left in a traced process.

use std::time::{Duration, Instant};

use super::pytap;

/// Waits until `ok` holds; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// The pids of the processes whose command line contains `needle`.
pub fn pids_running(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The sites of these markers in a running process, as `pytap list -p`
/// shows them: (marker, probe address, live semaphore value).
pub fn sites_named(pid: u32, names: &[&str]) -> Vec<(String, u64, u64)> {
    let json = pytap(&["list", "--json", "-p", &pid.to_string()]).json();
    json["modules"][0]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| names.contains(&n)))
        .map(|s: &serde_json::Value| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["pc"].as_u64().unwrap(),
                s["semaphore"]["value"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The byte at `address` in the process: 0x90 for a marker's nop, 0xcc
/// while a uprobe sits on it.
pub fn byte_at(pid: u32, address: u64) -> u8 {
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, address).unwrap();
    b[0]
}

/// Whether every marker site of a process has its semaphore at 0 and its
/// original instruction back: nothing of pytap's is left in it.
pub fn nothing_armed(pid: u32) -> bool {
    let json = pytap(&["list", "--json", "-p", &pid.to_string()]).json();
    json["modules"][0]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| {
            s["semaphore"]["value"].as_u64().unwrap_or(0) == 0
                && byte_at(pid, s["pc"].as_u64().unwrap()) == 0x90
        })
}
