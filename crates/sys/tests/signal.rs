//! SignalFd, in a binary of its own without the test harness: the signal
//! mask is per thread and signals may be process-directed, so this must run
//! on the main thread with no other threads around.

use std::time::Duration;

use pytap_sys::poll::Poller;
use pytap_sys::process::kill;
use pytap_sys::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SignalFd};

/// The calling thread's blocked-signal mask, from /proc (bit n-1 = signal n).
fn blocked() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// Flags of an fd from /proc/self/fdinfo (octal).
fn fd_flags(fd: i32) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap();
    u32::from_str_radix(flags.trim(), 8).unwrap()
}

fn main() {
    let handled = bit(SIGINT) | bit(SIGTERM) | bit(SIGHUP) | bit(SIGQUIT);
    let before = blocked();
    assert_eq!(before & handled, 0, "signals blocked before the test");

    let sfd = SignalFd::new().unwrap();
    assert_eq!(blocked() & handled, handled, "not blocked");
    assert_eq!(
        blocked() & bit(libc::SIGPIPE),
        before & bit(libc::SIGPIPE),
        "SIGPIPE touched"
    );
    let flags = fd_flags(sfd.raw_fd());
    assert_ne!(flags & 0o2000000, 0, "signalfd not CLOEXEC");
    assert_ne!(flags & 0o4000, 0, "signalfd not O_NONBLOCK");

    assert_eq!(sfd.read().unwrap(), None);

    let poller = Poller::new().unwrap();
    poller.add(sfd.raw_fd(), 5).unwrap();
    assert_eq!(
        poller.wait(Some(Duration::ZERO)).unwrap(),
        Vec::<u64>::new()
    );

    // Process-directed signals: the only thread blocks them, so they stay
    // pending and show up on the signalfd instead of killing us.
    let me = std::process::id();
    kill(me, SIGTERM).unwrap();
    assert_eq!(poller.wait(Some(Duration::from_secs(5))).unwrap(), [5]);
    assert_eq!(sfd.read().unwrap(), Some(SIGTERM));
    assert_eq!(sfd.read().unwrap(), None);

    for sig in [SIGINT, SIGHUP, SIGQUIT] {
        kill(me, sig).unwrap();
        assert_eq!(sfd.read().unwrap(), Some(sig));
    }
    // Standard signals do not queue: two SIGINTs read as one.
    kill(me, SIGINT).unwrap();
    kill(me, SIGINT).unwrap();
    assert_eq!(sfd.read().unwrap(), Some(SIGINT));
    assert_eq!(sfd.read().unwrap(), None);

    drop(sfd);
    assert_eq!(blocked(), before, "mask not restored");
    println!("signal: ok");
}
