//! The source tree against ARCHITECTURE.md: its table of rooms, lowest
//! first, is the layering, and no file of `src/` names a room listed
//! below its own (`crate::room` in code, comments aside). A strict order
//! also means no circle between folders. Needs nothing but the sources.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The rooms of `src/`, in the table's order: each row's first cell names
/// its paths (`src/cli.rs`, `src/cli/`).
fn rooms(architecture: &str) -> Vec<Vec<String>> {
    architecture
        .lines()
        .filter(|l| l.starts_with("| `src/"))
        .map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default();
            cell.split('`')
                .filter(|p| p.starts_with("src/"))
                .map(|p| {
                    p.trim_start_matches("src/")
                        .trim_end_matches('/')
                        .trim_end_matches(".rs")
                        .to_string()
                })
                .collect()
        })
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::NAME` references in code (not in comments), with their lines.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            // `crate::{a, b::c}` names each.
            let names = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or_default(),
                None => rest,
            };
            for name in names.split(',') {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((n + 1, name));
                if !rest.starts_with('{') {
                    break;
                }
            }
        }
    }
    found
}

#[test]
fn no_room_names_a_room_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let rooms = rooms(&architecture);
    let rank: HashMap<&str, usize> = rooms
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), i)))
        .collect();
    for expected in ["cpython", "engine", "runner", "tool", "cli", "main"] {
        assert!(
            rank.contains_key(expected),
            "ARCHITECTURE.md has no row for src/{expected}"
        );
    }
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root.join("src")).unwrap();
        let first = rel.iter().next().unwrap().to_string_lossy();
        let own = first.trim_end_matches(".rs");
        if own == "lib" {
            continue;
        }
        let Some(&own_rank) = rank.get(own) else {
            wrong.push(format!(
                "src/{}: in no room of ARCHITECTURE.md",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, name) in references(&text) {
            if let Some(&rank) = rank.get(name.as_str())
                && rank > own_rank
            {
                wrong.push(format!(
                    "src/{}:{line}: {own} uses crate::{name}, a room below it",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that run the wrong way:\n{}",
        wrong.join("\n")
    );
}
