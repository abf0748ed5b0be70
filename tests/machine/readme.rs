//! The README's examples are real runs, and stay so: every ```console
//! block after a `<!-- a real run -->` comment is run here, command by
//! command (`$ ` lines, in the repository's root, with this build's pytap
//! first on `PATH`; what it prints, then what it says on stderr), and its
//! output compared with the README's, times, process ids and the counts
//! of pytap's own summary lines masked (and
//! more where the comment says: `<!-- a real run; masked: lead -->` masks
//! each line's first number, `numbers` every number). `PYTAP_BLESS=1`
//! writes this run's outputs into the README instead.

use std::path::Path;
use std::process::Command;

use crate::harness::{alone, pytap_bin, require_kernel, root};

/// How much of an output the comparison ignores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mask {
    /// Times, timestamps, process and thread ids, CPUs.
    Ids,
    /// That and each line's first number (a time column).
    Lead,
    /// Every number (pauses, durations).
    Numbers,
}

/// One command of a block, and what the README says it prints.
#[derive(Debug)]
struct Example {
    /// Line of the command in README.md (from 1).
    line: usize,
    command: String,
    /// The output's lines in the README, and their range there.
    output: Vec<String>,
    range: std::ops::Range<usize>,
    mask: Mask,
}

/// The examples of the README's marked blocks.
fn examples(readme: &str) -> Vec<Example> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(marker) = lines[i].strip_prefix("<!-- a real run") else {
            i += 1;
            continue;
        };
        let mask = if marker.contains("masked: numbers") {
            Mask::Numbers
        } else if marker.contains("masked: lead") {
            Mask::Lead
        } else {
            Mask::Ids
        };
        assert_eq!(
            lines.get(i + 1),
            Some(&"```console"),
            "README.md:{}: a marked block must follow",
            i + 1
        );
        let mut j = i + 2;
        let end = (j..lines.len())
            .find(|&k| lines[k] == "```")
            .expect("a closed block");
        while j < end {
            let Some(first) = lines[j].strip_prefix("$ ") else {
                j += 1;
                continue;
            };
            let line = j + 1;
            let mut command = first.to_string();
            // A quoted argument spans lines until its quote closes.
            while command.matches('\'').count() % 2 == 1 && j + 1 < end {
                j += 1;
                command.push('\n');
                command.push_str(lines[j]);
            }
            let start = j + 1;
            let mut k = start;
            while k < end && !lines[k].starts_with("$ ") {
                k += 1;
            }
            // A blank line before the next command separates, it is not output.
            let mut stop = k;
            while stop > start && lines[stop - 1].trim().is_empty() && k < end {
                stop -= 1;
            }
            out.push(Example {
                line,
                command,
                output: lines[start..stop].iter().map(|l| l.to_string()).collect(),
                range: start..stop,
                mask,
            });
            j = k;
        }
        i = end + 1;
    }
    out
}

/// Runs an example's command as a user would in the repository's root.
fn run(command: &str) -> String {
    let bin = pytap_bin().parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", command])
        .current_dir(root())
        .env("PATH", path)
        .output()
        .unwrap();
    // What it printed, then what was said on stderr (pytap's notices):
    // the two as one pipe would interleave them differently each run.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `text` with what varies from run to run replaced by placeholders.
fn masked(text: &str, mask: Mask, root: &Path) -> String {
    let text = text
        .replace(&root.display().to_string(), "ROOT")
        .replace("/work/main", "ROOT");
    text.lines()
        .map(|line| {
            let mut line = mask_line(line);
            // A whole run's counts (events, collections) move with the
            // program's threads and allocations; a view's counts do not.
            if line.starts_with("pytap: ") {
                line = mask_every_number(&line);
            }
            match mask {
                Mask::Ids => {}
                Mask::Lead => line = mask_first_number(&line),
                Mask::Numbers => line = mask_every_number(&line),
            }
            // A masked value's width varies: so does the padding that
            // aligns it in its column.
            // So does a path under the checkout, whose length is the
            // checkout's.
            while line.contains("  N.N") || line.contains("  ID") || line.contains("  ROOT") {
                line = line
                    .replace("  N.N", " N.N")
                    .replace("  ID", " ID")
                    .replace("  ROOT", " ROOT");
            }
            if mask == Mask::Numbers {
                while line.contains("  N") {
                    line = line.replace("  N", " N");
                }
            }
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

/// Times (`0.029382`, `1.2 ms`), ids in `name(PID)`, `[PID] `, `pid N`,
/// JSON's pid/tid/ts_ns/cpu and time fields, and trace's id columns.
fn mask_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        // A decimal number: N.N.
        if c.is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                out.push_str("N.N");
                continue;
            }
            let number = &line[start..i];
            let before = &line[..start];
            let id = before.ends_with('(') && line[i..].starts_with(')')
                || before == "[" && line[i..].starts_with("] ")
                || before.ends_with("pid ")
                || before.ends_with("tid ")
                || before.ends_with("process ")
                || ["\"pid\":", "\"tid\":", "\"ts_ns\":", "\"cpu\":", "_ns\":"]
                    .iter()
                    .any(|k| before.ends_with(k));
            out.push_str(if id { "ID" } else { number });
            continue;
        }
        out.push(c as char);
        i += 1;
        // (Multi-byte characters are copied byte by byte, whole.)
        while i < bytes.len() && (bytes[i] & 0xc0) == 0x80 {
            out.push_str(&line[i..i + 1]);
            i += 1;
        }
    }
    // trace's text columns: TIME PID TID CPU.
    let fields: Vec<&str> = out.split_whitespace().collect();
    if fields.len() > 4
        && fields[0] == "N.N"
        && fields[1..4]
            .iter()
            .all(|f| f.parse::<u64>().is_ok() || *f == "-" || *f == "ID")
    {
        return format!("N.N ID ID ID {}", fields[4..].join(" "));
    }
    out
}

fn mask_first_number(line: &str) -> String {
    // After flow's `[PID] ` prefix, when there is one.
    let (prefix, line) = match line.strip_prefix("[ID] ") {
        Some(rest) => ("[ID] ", rest),
        None => ("", line),
    };
    let trimmed = line.trim_start();
    let lead = trimmed.chars().take_while(char::is_ascii_digit).count();
    if lead == 0 {
        return format!("{prefix}{line}");
    }
    format!("{prefix}N{}", &trimmed[lead..])
}

fn mask_every_number(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn the_readme_examples_are_what_pytap_prints() {
    require_kernel();
    let _alone = alone();
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 15,
        "only {} marked examples in README.md",
        examples.len()
    );
    let bless = std::env::var_os("PYTAP_BLESS").is_some();
    let mut lines: Vec<String> = readme.lines().map(String::from).collect();
    let mut failures = Vec::new();
    // In order (an example may read what one before it wrote), then
    // compared or written from the last, so that rewriting one keeps the
    // others' line numbers.
    let outputs: Vec<String> = examples.iter().map(|ex| run(&ex.command)).collect();
    for (ex, got) in examples.iter().zip(outputs).rev() {
        if bless {
            let new: Vec<String> = got
                .trim_end()
                .lines()
                .map(|l| l.trim_end().to_string())
                .collect();
            lines.splice(ex.range.clone(), new);
            continue;
        }
        let want = masked(&ex.output.join("\n"), ex.mask, root());
        let have = masked(&got, ex.mask, root());
        if want != have {
            failures.push(format!(
                "README.md:{}: $ {}\n--- README\n{want}\n--- this run\n{have}\n",
                ex.line, ex.command
            ));
        }
    }
    if bless {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        return;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn masks_keep_what_must_match() {
    let m = |s| masked(s, Mask::Ids, Path::new("/nowhere"));
    assert_eq!(
        m(
            "     0.029382     1038     1038    1  function__entry            <module> (/work/main/examples/demo.py:0)"
        ),
        "N.N ID ID ID function__entry <module> (ROOT/examples/demo.py:0)"
    );
    assert_eq!(
        m(" 27439 python3.11(1058):  => main in /x.py:9"),
        " 27439 python3.11(ID):  => main in /x.py:9"
    );
    assert_eq!(
        m("pytap: 4822 events, 0 lost in 0.095 s"),
        "pytap: N events, N lost in N.N s"
    );
    assert_eq!(
        m(
            "{\"marker\":\"audit\",\"pid\":1041,\"tid\":1041,\"ts_ns\":2993157912981,\"cpu\":0,\"args\":[42]}"
        ),
        "{\"marker\":\"audit\",\"pid\":ID,\"tid\":ID,\"ts_ns\":ID,\"cpu\":ID,\"args\":[42]}"
    );
    assert_eq!(
        mask_first_number(" 27439 python3.11(ID)"),
        "N python3.11(ID)"
    );
    assert_eq!(mask_every_number("[512K, 1M)   1 |@@"), "[NK, NM)   N |@@");
    // A column right-aligned to the checkout's path, from two checkouts.
    let row = |root: &str| {
        let cell = format!("{root}/tests/py/phases.py");
        masked(
            &format!("7{cell:>60}     12"),
            Mask::Numbers,
            Path::new(root),
        )
    };
    assert_eq!(row("/work/main"), row("/check/work/main"));
}
