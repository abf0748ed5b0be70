//! A real terminal, in tmux.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A detached tmux session running one shell command in a terminal of a
/// known size; killed when dropped. For the tests of what pytap does in a
/// real terminal (live view, terminal loss, width).
#[derive(Debug)]
pub struct Tmux {
    session: String,
}

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("prerequisite missing: tmux (apt-get install tmux): {e}"))
}

impl Tmux {
    /// Starts `sh -c command` in a `cols` x `rows` terminal.
    pub fn start(name: &str, cols: u16, rows: u16, command: &str) -> Tmux {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("pytap-{name}-{}-{n}", std::process::id());
        let out = tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            "sh",
            "-c",
            command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmux { session }
    }

    /// What the terminal shows now.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.session]).stdout)
            .into_owned()
    }

    /// Everything the terminal showed, scrollback included.
    pub fn history(&self) -> String {
        String::from_utf8_lossy(
            &tmux(&["capture-pane", "-p", "-S", "-10000", "-t", &self.session]).stdout,
        )
        .into_owned()
    }

    /// Everything the terminal showed, with lines the terminal wrapped
    /// joined back (so a line wider than the terminal shows as one).
    pub fn history_joined(&self) -> String {
        String::from_utf8_lossy(
            &tmux(&[
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-10000",
                "-t",
                &self.session,
            ])
            .stdout,
        )
        .into_owned()
    }

    /// Types keys.
    pub fn send(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.session, keys]);
    }

    /// Waits until the screen satisfies `ok`; panics with the screen after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes the terminal, as closing a terminal window does.
    pub fn kill(&self) {
        tmux(&["kill-session", "-t", &self.session]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.kill();
    }
}
