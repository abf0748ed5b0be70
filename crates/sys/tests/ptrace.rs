//! The tracer: a command held at its exec, forks and execs reported before
//! they run, signals passed on, job control kept, exits, detaching, pidfds,
//! pseudo-terminals. In a binary of its own without the test harness:
//! `waitpid(-1)` sees every child of the process, so the tests must not
//! run side by side.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use pytap_sys::poll::Poller;
use pytap_sys::process::{ExitStatus, kill, pidfd_open, try_wait};
use pytap_sys::ptrace::{self, Command, ForkKind, Options, Stop};
use pytap_sys::pty::Pty;
use pytap_sys::signal::{SIGCONT, SIGKILL};

const FOLLOW: Options = Options {
    forks: true,
    exit_kill: true,
};

fn sh(script: &str, options: Options) -> u32 {
    let args: Vec<OsString> = vec!["-c".into(), script.into()];
    ptrace::spawn(
        &Command {
            program: OsStr::new("/bin/sh"),
            args: &args,
            env: &[],
            terminal: None,
        },
        options,
    )
    .unwrap()
}

fn exe_name(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Runs the tree until every tracee is gone, resuming every stop as pytap
/// does, and returns the stops seen (signals included) in order.
fn run_to_end() -> Vec<Stop> {
    let mut stops = Vec::new();
    while let Some(stop) = ptrace::wait(true).unwrap() {
        stops.push(stop);
        match stop {
            Stop::Forked { tid, .. } | Stop::Exec { tid, .. } | Stop::Started { tid } => {
                ptrace::resume(tid, 0).unwrap()
            }
            Stop::Signal { tid, signal } => ptrace::resume(tid, signal).unwrap(),
            Stop::GroupStop { tid, .. } => ptrace::listen(tid).unwrap(),
            Stop::Exited { .. } => {}
        }
    }
    stops
}

fn held_at_exec_then_exec_and_exit() {
    let pid = sh("exec /bin/true", FOLLOW);
    // Held right after the shell's own exec, before it ran.
    assert!(["sh", "dash", "bash"].contains(&exe_name(pid).as_str()));
    ptrace::resume(pid, 0).unwrap();
    assert_eq!(
        ptrace::wait(true).unwrap(),
        Some(Stop::Exec {
            tid: pid,
            former: pid
        })
    );
    assert_eq!(exe_name(pid), "true");
    ptrace::resume(pid, 0).unwrap();
    assert_eq!(
        ptrace::wait(true).unwrap(),
        Some(Stop::Exited {
            tid: pid,
            status: ExitStatus::Code(0)
        })
    );
    assert_eq!(ptrace::wait(false).unwrap(), None);
}

fn path_lookup_args_and_env() {
    let env = [(OsString::from("PYTAP_SYS_TEST"), OsString::from("yes"))];
    let args: Vec<OsString> = ["-c", r#"test "$PYTAP_SYS_TEST" = yes && exit 42"#]
        .iter()
        .map(Into::into)
        .collect();
    let pid = ptrace::spawn(
        &Command {
            program: OsStr::new("sh"),
            args: &args,
            env: &env,
            terminal: None,
        },
        FOLLOW,
    )
    .unwrap();
    ptrace::resume(pid, 0).unwrap();
    assert_eq!(
        run_to_end(),
        [Stop::Exited {
            tid: pid,
            status: ExitStatus::Code(42)
        }]
    );
}

fn a_missing_program_is_named() {
    let e = ptrace::spawn(
        &Command {
            program: OsStr::new("python9-pytap-missing"),
            args: &[],
            env: &[],
            terminal: None,
        },
        FOLLOW,
    )
    .unwrap_err();
    // Said as a shell says it (pytap's error names the program).
    assert_eq!(e.call, "execve");
    assert_eq!(e.to_string(), "execve: command not found");
    // A file that exists but cannot be executed: execve's own errno.
    let e = ptrace::spawn(
        &Command {
            program: OsStr::new("/etc/passwd"),
            args: &[],
            env: &[],
            terminal: None,
        },
        FOLLOW,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "execve: Permission denied (it is not executable)"
    );
}

fn forks_and_execs_of_the_tree_are_reported() {
    let pid = sh("/bin/true; (exit 3); exit 4", FOLLOW);
    ptrace::resume(pid, 0).unwrap();
    let stops = run_to_end();
    let children: Vec<u32> = stops
        .iter()
        .filter_map(|s| match s {
            Stop::Forked { tid, child, kind } if *tid == pid => {
                assert_ne!(*kind, ForkKind::Clone, "{stops:?}");
                Some(*child)
            }
            _ => None,
        })
        .collect();
    assert_eq!(children.len(), 2, "{stops:?}");
    // The first child executed /bin/true, stopped before it ran.
    assert!(
        stops.contains(&Stop::Exec {
            tid: children[0],
            former: children[0]
        }),
        "{stops:?}"
    );
    assert!(stops.contains(&Stop::Exited {
        tid: children[0],
        status: ExitStatus::Code(0)
    }));
    assert!(stops.contains(&Stop::Exited {
        tid: children[1],
        status: ExitStatus::Code(3)
    }));
    assert_eq!(
        stops.last(),
        Some(&Stop::Exited {
            tid: pid,
            status: ExitStatus::Code(4)
        })
    );
    // Each child's first stop is reported too.
    for c in &children {
        assert!(stops.contains(&Stop::Started { tid: *c }), "{stops:?}");
    }
}

fn without_forks_children_run_untraced() {
    let pid = sh(
        "/bin/true; exit 5",
        Options {
            forks: false,
            exit_kill: true,
        },
    );
    ptrace::resume(pid, 0).unwrap();
    // The child is not traced; its exit reaches the shell as a SIGCHLD.
    let stops = run_to_end();
    assert_eq!(
        stops,
        [
            Stop::Signal {
                tid: pid,
                signal: libc::SIGCHLD
            },
            Stop::Exited {
                tid: pid,
                status: ExitStatus::Code(5)
            }
        ],
        "{stops:?}"
    );
}

fn signals_are_passed_on() {
    // The shell's trap only runs if SIGUSR1 is delivered, not swallowed.
    let pid = sh("trap 'exit 3' USR1; kill -USR1 $$; sleep 1; exit 0", FOLLOW);
    ptrace::resume(pid, 0).unwrap();
    let stops = run_to_end();
    assert!(stops.contains(&Stop::Signal {
        tid: pid,
        signal: libc::SIGUSR1
    }));
    assert_eq!(
        stops.last(),
        Some(&Stop::Exited {
            tid: pid,
            status: ExitStatus::Code(3)
        })
    );
    // SIGTERM reset to its default action in the child even if ignored here.
    let pid = sh("kill -TERM $$; exit 0", FOLLOW);
    ptrace::resume(pid, 0).unwrap();
    assert_eq!(
        run_to_end().last(),
        Some(&Stop::Exited {
            tid: pid,
            status: ExitStatus::Signal(15)
        })
    );
}

fn job_control_keeps_a_tracee_stopped_until_continued() {
    let pid = sh("kill -STOP $$; exit 5", FOLLOW);
    ptrace::resume(pid, 0).unwrap();
    // The SIGSTOP is delivered, then the tracee sits in its group-stop.
    let mut saw_group_stop = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !saw_group_stop {
        match ptrace::wait(true).unwrap().unwrap() {
            Stop::Signal { tid, signal } => ptrace::resume(tid, signal).unwrap(),
            Stop::GroupStop { tid, signal } => {
                assert_eq!((tid, signal), (pid, libc::SIGSTOP));
                ptrace::listen(tid).unwrap();
                saw_group_stop = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_group_stop);
    // Stopped, it stays stopped: still there after a while.
    std::thread::sleep(Duration::from_millis(300));
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = state
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(state == "t" || state == "T", "{state}");
    kill(pid, SIGCONT).unwrap();
    assert_eq!(
        run_to_end().last(),
        Some(&Stop::Exited {
            tid: pid,
            status: ExitStatus::Code(5)
        })
    );
}

fn detached_tracees_run_on_and_pidfds_tell_their_exit() {
    let pid = sh("sleep 0.3; exit 7", FOLLOW);
    let pidfd = pidfd_open(pid).unwrap();
    let poller = Poller::new().unwrap();
    poller.add(pidfd.as_raw_fd(), 99).unwrap();
    ptrace::detach(pid, 0).unwrap();
    assert_eq!(
        poller.wait(Some(Duration::ZERO)).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(try_wait(pid).unwrap(), None);
    assert_eq!(poller.wait(Some(Duration::from_secs(10))).unwrap(), [99]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = None;
    while status.is_none() && Instant::now() < deadline {
        status = try_wait(pid).unwrap();
    }
    assert_eq!(status, Some(ExitStatus::Code(7)));
    // pid 0 would mean our whole process group: refused.
    assert_eq!(
        kill(0, SIGKILL).unwrap_err().source.kind(),
        std::io::ErrorKind::InvalidInput
    );
}

fn interrupt_then_detach_a_running_tracee() {
    let pid = sh("sleep 0.5; exit 9", FOLLOW);
    ptrace::resume(pid, 0).unwrap();
    ptrace::interrupt(pid).unwrap();
    loop {
        match ptrace::wait(true).unwrap().unwrap() {
            Stop::Started { tid } => {
                ptrace::detach(tid, 0).unwrap();
                break;
            }
            Stop::Signal { tid, signal } => ptrace::resume(tid, signal).unwrap(),
            Stop::Forked { tid, .. } => ptrace::resume(tid, 0).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Untraced now (its sleep child was auto-attached: let it go too).
    while let Some(stop) = ptrace::wait(false).unwrap() {
        if let Stop::Started { tid } = stop {
            ptrace::detach(tid, 0).unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = None;
    while status.is_none() && Instant::now() < deadline {
        status = try_wait(pid).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(status, Some(ExitStatus::Code(9)));
}

fn a_terminal_becomes_the_childs_stdio() {
    let pty = Pty::open().unwrap();
    let args: Vec<OsString> = vec!["-c".into(), "test -t 1 && echo on-a-tty".into()];
    let pid = ptrace::spawn(
        &Command {
            program: OsStr::new("/bin/sh"),
            args: &args,
            env: &[],
            terminal: Some(std::os::fd::AsFd::as_fd(&pty.slave)),
        },
        FOLLOW,
    )
    .unwrap();
    ptrace::resume(pid, 0).unwrap();
    assert_eq!(
        run_to_end().last(),
        Some(&Stop::Exited {
            tid: pid,
            status: ExitStatus::Code(0)
        })
    );
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    let mut buf = [0u8; 64];
    let n = master.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"on-a-tty\r\n");
}

fn main() {
    let tests: [(&str, fn()); 12] = [
        (
            "held_at_exec_then_exec_and_exit",
            held_at_exec_then_exec_and_exit,
        ),
        ("path_lookup_args_and_env", path_lookup_args_and_env),
        ("a_missing_program_is_named", a_missing_program_is_named),
        (
            "forks_and_execs_of_the_tree_are_reported",
            forks_and_execs_of_the_tree_are_reported,
        ),
        (
            "without_forks_children_run_untraced",
            without_forks_children_run_untraced,
        ),
        ("signals_are_passed_on", signals_are_passed_on),
        (
            "job_control_keeps_a_tracee_stopped_until_continued",
            job_control_keeps_a_tracee_stopped_until_continued,
        ),
        (
            "detached_tracees_run_on_and_pidfds_tell_their_exit",
            detached_tracees_run_on_and_pidfds_tell_their_exit,
        ),
        (
            "interrupt_then_detach_a_running_tracee",
            interrupt_then_detach_a_running_tracee,
        ),
        (
            "a_terminal_becomes_the_childs_stdio",
            a_terminal_becomes_the_childs_stdio,
        ),
        (
            "killing_a_held_tracee_reports_its_death",
            killing_a_held_tracee_reports_its_death,
        ),
        (
            "closing_in_the_background_keeps_nothing_else",
            closing_in_the_background_keeps_nothing_else,
        ),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
}

/// A tracee killed while held at its exec is reported killed by SIGKILL.
fn killing_a_held_tracee_reports_its_death() {
    let pid = sh("exec sleep 30", FOLLOW);
    kill(pid, SIGKILL).unwrap();
    assert_eq!(
        run_to_end(),
        [Stop::Exited {
            tid: pid,
            status: ExitStatus::Signal(SIGKILL)
        }]
    );
}

/// `close_in_background`: the given descriptors are closed (by a helper
/// process, after the caller's copies), and the helper holds no other
/// descriptor of the caller's (a pipe the caller closes reaches its end of
/// file at once).
fn closing_in_the_background_keeps_nothing_else() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let (given, mut given_peer) = UnixStream::pair().unwrap();
    let (other, mut other_peer) = UnixStream::pair().unwrap();
    pytap_sys::process::close_in_background(vec![std::os::fd::OwnedFd::from(given)]);
    drop(other);
    let mut buf = [0u8; 1];
    // Both ends see end of file: the helper closed `given` and never held `other`.
    other_peer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(other_peer.read(&mut buf).unwrap(), 0);
    given_peer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(given_peer.read(&mut buf).unwrap(), 0);
    // The helper exits (it is our child: reap it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(Stop::Exited {
            status: ExitStatus::Code(0),
            ..
        }) = ptrace::wait(false).unwrap()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the helper did not exit");
}
