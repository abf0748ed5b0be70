//! What binutils' readelf says about a file, to hold pytap's listings to.

use std::path::Path;
use std::process::Command;

/// One note as `readelf -n` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadelfNote {
    pub provider: String,
    pub name: String,
    pub location: u64,
    pub base: u64,
    pub semaphore: u64,
    pub args: String,
}

/// The stapsdt notes of a file according to binutils' readelf.
pub fn readelf_notes(path: &Path) -> Vec<ReadelfNote> {
    let out = Command::new("readelf")
        .args(["-n", "--wide"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("prerequisite missing: readelf (apt-get install binutils): {e}")
        });
    assert!(out.status.success(), "readelf failed on {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut notes = Vec::new();
    let mut cur: Option<ReadelfNote> = None;
    for line in text.lines().map(str::trim) {
        let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
        // With --wide, readelf prints the provider at the end of the note's header line.
        if let Some((_, p)) = line.split_once("Provider: ") {
            cur = Some(ReadelfNote {
                provider: p.to_string(),
                name: String::new(),
                location: 0,
                base: 0,
                semaphore: 0,
                args: String::new(),
            });
        } else if let (Some(n), Some(c)) = (line.strip_prefix("Name: "), cur.as_mut()) {
            c.name = n.to_string();
        } else if let (Some(rest), Some(c)) = (line.strip_prefix("Location: "), cur.as_mut()) {
            // Location: 0x..., Base: 0x..., Semaphore: 0x...
            let parts: Vec<&str> = rest.split(", ").collect();
            c.location = hex(parts[0]);
            c.base = hex(parts[1].trim_start_matches("Base: "));
            c.semaphore = hex(parts[2].trim_start_matches("Semaphore: "));
        } else if let (Some(a), Some(c)) = (line.strip_prefix("Arguments: "), cur.as_mut()) {
            c.args = a.to_string();
            notes.push(cur.take().unwrap());
        } else if line == "Arguments:"
            && let Some(mut c) = cur.take()
        {
            c.args.clear();
            notes.push(c);
        }
    }
    notes
}

/// A section's address and file offset according to `readelf -S`.
pub fn readelf_section(path: &Path, name: &str) -> (u64, u64) {
    let out = Command::new("readelf")
        .args(["-S", "--wide"])
        .arg(path)
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.split_once(']').map(|(_, r)| r.trim()) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&name) {
            let h = |s: &str| u64::from_str_radix(s, 16).unwrap();
            return (h(f[2]), h(f[3]));
        }
    }
    panic!("no section {name} in {}", path.display());
}
