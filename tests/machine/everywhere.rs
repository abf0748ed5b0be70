//! `--all`: every process with markers on the machine, which is why these
//! run alone (other tests' interpreters would be traced too).

use std::process::Command;
use std::time::Duration;

use crate::harness::{ChildGuard, alone, fixture, pytap, require_kernel};

#[test]
fn all_beside_a_314_says_why_it_gets_no_function_events() {
    require_kernel();
    let _alone = alone();
    let mut target = ChildGuard::spawn(Command::new(&fixture("3.14").binary).args([
        "-c",
        "import sys\nprint('ready', flush=True)\nsys.stdin.read()",
    ]));
    target.wait_for_line("ready", Duration::from_secs(20));
    // And a 3.11, which has function markers (without any, a tool that
    // needs them refuses: the 3.14 "has no function__entry marker").
    let mut other = ChildGuard::spawn(Command::new(&fixture("3.11").binary).args([
        "-c",
        "import sys\nprint('ready', flush=True)\nsys.stdin.read()",
    ]));
    other.wait_for_line("ready", Duration::from_secs(20));
    let run = pytap(&["calls", "--all", "--duration", "0.5", "-o", "/dev/null"]);
    // It used to say "the command's own program has markers": there is no
    // command under --all.
    assert!(
        run.stderr.contains(
            "no function markers (3.12 to 3.14), and --all gives no process pytap's agent"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("the command's own program"),
        "{}",
        run.stderr
    );
}
