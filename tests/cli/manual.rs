//! Help, completions and the manual page come from one set of definitions:
//! every subcommand `pytap --help` lists is in the manual page and in every
//! completion script, and the scripts are valid for their shells.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{ChildGuard, pytap};

/// The subcommands `pytap --help` lists (its `Commands:` section).
fn subcommands() -> Vec<String> {
    let help = pytap(&["--help"]);
    let text = help.ok();
    let section = text
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section");
    let names: Vec<String> = section
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    names
}

#[test]
fn the_manual_page_has_every_subcommand() {
    let run = pytap(&["man"]);
    let page = run.ok();
    assert!(page.contains(".TH pytap 1"), "{page}");
    for sub in subcommands() {
        let heading = format!(".SH \"PYTAP {}\"", sub.to_uppercase());
        assert!(page.contains(&heading), "no {heading} in the manual page");
    }
    // One page holds them all: it names no page of its own per command
    // (it used to refer to pytap-list(1) and the like, which do not exist).
    assert!(!page.contains("(1)"), "{page}");
    assert!(!page.contains("pytap\\-list"), "{page}");
    // It renders: man(1) reads it without complaint.
    let mut man = Command::new("man");
    man.args(["-l", "-"])
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut man = ChildGuard::start_or(
        &mut man,
        "prerequisite missing: man (apt-get install man-db)",
    );
    man.child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = man.wait_with_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // man marks bold and underline with backspaces (`N\x08N`): keep the letters.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    assert!(
        text.contains("PYTAP TRACE") && text.contains("--no-children"),
        "{text}"
    );
}

#[test]
fn completion_scripts_cover_every_subcommand_and_parse() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let run = pytap(&["completions", shell]);
        let script = run.ok();
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{shell}: no {sub}");
        }
        match shell {
            "bash" => {
                let mut bash = ChildGuard::start(
                    Command::new("bash")
                        .arg("-n")
                        .stdin(Stdio::piped())
                        .stderr(Stdio::piped()),
                );
                bash.child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(script.as_bytes())
                    .unwrap();
                let out = bash.wait_with_output();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(script.contains("complete -F _pytap"), "{script}");
            }
            "zsh" => assert!(script.starts_with("#compdef pytap"), "{script}"),
            _ => assert!(script.contains("complete -c pytap"), "{script}"),
        }
    }
    assert_eq!(pytap(&["completions", "tcsh"]).code, 2);
}
