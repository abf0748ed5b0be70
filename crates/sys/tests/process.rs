//! Traced children: exec stops, signal pass-through, exits, detach, pidfds.

mod common;

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use pytap_sys::poll::Poller;
use pytap_sys::process::{Stop, TracedChild, kill, pidfd_open};
use pytap_sys::signal::SIGKILL;

fn sh(script: &str) -> TracedChild {
    TracedChild::spawn(OsStr::new("/bin/sh"), &["-c".into(), script.into()], &[]).unwrap()
}

fn exe_name(c: &TracedChild) -> String {
    c.exe()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn exec_stops_then_exit() {
    let mut c = sh("exec /bin/true");
    // First stop: right after the exec of the shell itself.
    let first = exe_name(&c);
    assert!(["sh", "dash", "bash"].contains(&first.as_str()), "{first}");
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exec);
    assert_eq!(exe_name(&c), "true");
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exited(0));
    // Asking again keeps answering the same.
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exited(0));
    let mut done = c.detach().unwrap();
    assert_eq!(done.wait().unwrap(), 0);
}

#[test]
fn path_lookup_args_and_env() {
    let env = [(OsString::from("PYTAP_SYS_TEST"), OsString::from("yes"))];
    let args: Vec<OsString> = ["-c", r#"test "$PYTAP_SYS_TEST" = yes && exit 42"#]
        .iter()
        .map(Into::into)
        .collect();
    let mut c = TracedChild::spawn(OsStr::new("sh"), &args, &env).unwrap();
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exited(42));
}

#[test]
fn a_missing_program_is_named_in_the_error() {
    let e = TracedChild::spawn(OsStr::new("python9-pytap-missing"), &[], &[]).unwrap_err();
    assert_eq!(e.call, "execvp(python9-pytap-missing)");
    assert_eq!(e.errno(), Some(2));
    assert!(
        e.to_string()
            .starts_with("execvp(python9-pytap-missing): No such file or directory"),
        "{e}"
    );
}

#[test]
fn signal_death_is_128_plus_signal() {
    let mut c = sh("kill -9 $$");
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exited(137));
}

#[test]
fn signals_are_passed_on() {
    // The shell's trap only runs if SIGUSR1 is delivered, not swallowed.
    let mut c = sh("trap 'exit 3' USR1; kill -USR1 $$; sleep 1; exit 0");
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exited(3));
    // SIGTERM reset to its default action in the child even if we ignored it.
    let mut c = sh("kill -TERM $$; exit 0");
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exited(128 + 15));
}

#[test]
fn a_group_stop_does_not_hang_the_tracer() {
    let mut c = sh("kill -STOP $$; exit 5");
    assert_eq!(c.continue_to_next_exec().unwrap(), Stop::Exited(5));
}

#[test]
fn detach_then_wait_and_pidfd() {
    let c = sh("sleep 0.3; exit 7");
    let pidfd = pidfd_open(c.pid()).unwrap();
    assert!(common::is_cloexec(std::os::fd::AsRawFd::as_raw_fd(&pidfd)));
    let poller = Poller::new().unwrap();
    poller
        .add(std::os::fd::AsRawFd::as_raw_fd(&pidfd), 99)
        .unwrap();
    let mut child = c.detach().unwrap();
    assert_eq!(
        poller.wait(Some(Duration::ZERO)).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(child.try_wait().unwrap(), None);
    assert_eq!(poller.wait(Some(Duration::from_secs(10))).unwrap(), [99]);
    assert_eq!(child.wait().unwrap(), 7);
    assert_eq!(child.try_wait().unwrap(), Some(7));
}

#[test]
fn kill_after_detach() {
    let c = sh("exec sleep 30");
    let mut child = c.detach().unwrap();
    kill(child.pid(), SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap(), 137);
    // pid 0 would mean our whole process group: refused.
    assert_eq!(
        kill(0, SIGKILL).unwrap_err().source.kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn dropping_a_traced_child_kills_it() {
    let c = sh("exec sleep 30");
    let pidfd = pidfd_open(c.pid()).unwrap();
    let poller = Poller::new().unwrap();
    poller
        .add(std::os::fd::AsRawFd::as_raw_fd(&pidfd), 1)
        .unwrap();
    assert_eq!(
        poller.wait(Some(Duration::ZERO)).unwrap(),
        Vec::<u64>::new()
    );
    drop(c);
    // Killed and reaped by the drop, so the pidfd is readable at once.
    assert_eq!(poller.wait(Some(Duration::ZERO)).unwrap(), [1]);
}
