//! pytap in a real terminal (tmux): a live view that loses its terminal
//! ends cleanly, stop signals work in the live view, notices and the
//! traced command's output are never drawn over it and never lost, and
//! text views fit the terminal's width, and the live profile redraws in
//! place.

use std::process::Command;
use std::time::Duration;

use crate::harness::{
    ChildGuard, Tmux, alive, fixture, pids_running, pytap_bin, require_kernel, scratch, script,
    system_python, wait_until,
};

const SECS20: Duration = Duration::from_secs(20);

fn busy(python: &std::path::Path) -> ChildGuard {
    let mut busy = ChildGuard::spawn(Command::new(python).arg(script("busy.py")));
    busy.wait_for_line("ready", SECS20);
    busy
}

/// The pids of running pytaps whose command line contains `needle`.
fn pytap_top_pids(needle: &str) -> Vec<u32> {
    pids_running(needle)
        .into_iter()
        .filter(|&p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == pytap_bin()))
        .collect()
}

#[test]
fn a_live_view_whose_terminal_goes_away_ends_and_detaches() {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let mut target = busy(&system_python());
    let pid = target.pid();
    let term = Tmux::start(
        "lost-p",
        150,
        40,
        &format!("{} top -p {pid}", pytap_bin().display()),
    );
    term.wait_for("the live view", SECS20, |s| s.contains("busy.py"));
    let tracer = pytap_top_pids(&format!("top -p {pid}"));
    assert_eq!(tracer.len(), 1, "{tracer:?}");
    // Closing the terminal window: pytap must end (it used to spin on
    // read(0) = 0 forever), and the target's probes go with it.
    term.kill();
    wait_until("pytap to end", Duration::from_secs(5), || !alive(tracer[0]));
    assert!(crate::harness::nothing_armed(pid));
    assert!(target.is_running());
    let (code, rest) = target.finish();
    assert_eq!((code, rest.as_str()), (0, "done True\n"));
}

#[test]
fn a_launched_command_is_reaped_when_the_terminal_goes_away() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let tag = format!("linger-{}", std::process::id());
    // The command runs until its stdin (the pty) goes away.
    let code = format!("import sys; print('{tag}', flush=True); sys.stdin.read()");
    let term = Tmux::start(
        "lost-c",
        150,
        40,
        &format!("{} top -- {py} -c \"{code}\"", pytap_bin().display()),
    );
    term.wait_for("the live view", SECS20, |s| {
        s.contains("pytap top: interval")
    });
    // The interpreter itself (the tag is on pytap's and tmux's command lines too).
    let binary = fixture("3.9").binary.clone();
    let child: Vec<u32> = pids_running(&tag)
        .into_iter()
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == binary))
        .collect();
    assert_eq!(child.len(), 1, "{child:?}");
    let tracer = pytap_top_pids(&format!("top -- {py}"));
    assert_eq!(tracer.len(), 1, "{tracer:?}");
    term.kill();
    wait_until("pytap to end", Duration::from_secs(5), || !alive(tracer[0]));
    // Hung up, as it would have been untraced, and not left a zombie.
    wait_until("the command to be gone", Duration::from_secs(5), || {
        !std::path::Path::new(&format!("/proc/{}", child[0])).exists()
    });
}

#[test]
fn stop_signals_end_a_live_view_cleanly() {
    require_kernel();
    for signal in [
        pytap_sys::signal::SIGTERM,
        pytap_sys::signal::SIGINT,
        pytap_sys::signal::SIGHUP,
    ] {
        let mut target = busy(&fixture("3.15").binary);
        let pid = target.pid();
        let marker = scratch("live-signal").join(format!("done-{signal}"));
        let _ = std::fs::remove_file(&marker);
        let term = Tmux::start(
            "live-signal",
            150,
            40,
            &format!(
                "{} top -p {pid}; echo $? > {m}; stty -a >> {m}; sleep 60",
                pytap_bin().display(),
                m = marker.display()
            ),
        );
        term.wait_for("the live view", SECS20, |s| s.contains("busy.py"));
        let tracer = pytap_top_pids(&format!("top -p {pid}"));
        pytap_sys::process::kill(tracer[0], signal).unwrap();
        wait_until("pytap to end", Duration::from_secs(5), || {
            std::fs::read_to_string(&marker).is_ok_and(|m| m.contains("icanon"))
        });
        let result = std::fs::read_to_string(&marker).unwrap();
        assert!(result.starts_with("0\n"), "signal {signal}: {result}");
        assert!(
            result.split_whitespace().any(|w| w == "echo"),
            "signal {signal}: terminal not restored: {result}"
        );
        if signal != pytap_sys::signal::SIGHUP {
            // The screen is back, with the last view.
            let screen = term.history();
            assert!(screen.contains("probes detached"), "{screen}");
        }
        assert!(target.is_running());
        drop(term);
        let (code, _) = target.finish();
        assert_eq!(code, 0);
    }
}

#[test]
fn notices_and_the_commands_output_are_not_drawn_over_the_view() {
    require_kernel();
    let py = system_python().display().to_string();
    let marker = scratch("live-output").join("done");
    let _ = std::fs::remove_file(&marker);
    // 3.11 says where its function events come from; the program prints a line every 50 ms
    // for about 1.5 s, and says whether it runs on a terminal.
    let code = "import sys, time\nprint('tty', sys.stdout.isatty(), flush=True)\nfor i in range(30):\n    print('program line', i, flush=True)\n    time.sleep(0.05)\nprint('to stderr', file=sys.stderr)";
    let script_path = scratch("live-output").join("printer.py");
    std::fs::write(&script_path, code).unwrap();
    let term = Tmux::start(
        "live-output",
        150,
        40,
        &format!(
            "{} top -- {py} {}; touch {}; sleep 60",
            pytap_bin().display(),
            script_path.display(),
            marker.display()
        ),
    );
    term.wait_for("the live view", SECS20, |s| {
        s.contains("pytap top: interval")
    });
    // While the view is open: its frame is whole, the program's lines are
    // not on it, and the notice is on the status line.
    term.wait_for("the view with the notice", SECS20, |s| {
        s.contains("calls (function__entry)") && s.contains("pytap: ")
    });
    let view = term.screen();
    assert!(view.contains("calls (function__entry)"), "{view}");
    assert!(view.starts_with('┌') || view.starts_with("┌"), "{view}");
    assert!(!view.contains("program line"), "{view}");
    assert!(view.contains("pytap: "), "{view}");
    wait_until("the run to end", SECS20, || marker.exists());
    let after = term.history();
    // After it: the last view, every line the program wrote, in order, then
    // pytap's notices.
    let lines: Vec<&str> = after.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("program line 0"))
        .unwrap();
    for i in 0..30 {
        assert_eq!(lines[first + i], format!("program line {i}"), "{after}");
    }
    assert!(after.contains("tty True"), "{after}");
    assert!(after.contains("to stderr"), "{after}");
    assert!(
        after.contains("pytap: python3.11 exited with status 0"),
        "{after}"
    );
    let notice = lines
        .iter()
        .position(|l| l.contains("function events from pytap's agent inside the interpreter"))
        .unwrap();
    assert!(notice > first, "{after}");
}

#[test]
fn the_commands_output_can_go_to_a_file() {
    require_kernel();
    let py = fixture("3.15").binary.display().to_string();
    let dir = scratch("live-command-output");
    let out = dir.join("command.out");
    let marker = dir.join("done");
    let term = Tmux::start(
        "live-command-output",
        150,
        40,
        &format!(
            "{} top --command-output {} -- {py} {} 300; touch {}; sleep 60",
            pytap_bin().display(),
            out.display(),
            script("chatty.py"),
            marker.display()
        ),
    );
    wait_until("the run to end", SECS20, || marker.exists());
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 300, "{written}");
    assert!(written.starts_with("program line 00000 "));
    assert!(!term.history().contains("program line"));
}

#[test]
fn quitting_while_the_command_runs_relays_the_rest_of_its_output() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let dir = scratch("live-relay");
    let marker = dir.join("done");
    let code = "import time\nfor i in range(40):\n    print('relay line', i, flush=True)\n    time.sleep(0.05)";
    let path = dir.join("slow.py");
    std::fs::write(&path, code).unwrap();
    let term = Tmux::start(
        "live-relay",
        150,
        60,
        &format!(
            "{} top -- {py} {}; echo code=$? > {}; sleep 60",
            pytap_bin().display(),
            path.display(),
            marker.display()
        ),
    );
    term.wait_for("the live view", SECS20, |s| {
        s.contains("pytap top: interval")
    });
    term.send("q");
    wait_until("the command to finish", SECS20, || marker.exists());
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "code=0");
    let after = term.history();
    for i in 0..40 {
        assert!(after.contains(&format!("relay line {i}\n")), "{i}: {after}");
    }
    assert!(after.contains("pytap: quit, probes detached"), "{after}");
}

#[test]
fn text_views_fit_the_terminal() {
    require_kernel();
    // A file name far wider than the terminal, and a long audit argument.
    let dir = scratch("fit").join("a".repeat(100)).join("b".repeat(100));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wide.py");
    std::fs::write(
        &path,
        "import sys\ndef wide():\n    sys.audit('pytap.wide', 'y' * 3000)\nfor i in range(100):\n    wide()\n",
    )
    .unwrap();
    let py = fixture("3.15").binary.display().to_string();
    let marker = dir.join("done");
    let term = Tmux::start(
        "fit",
        130,
        50,
        &format!(
            "{p} top --plain -n 3 -- {py} {f}; {p} audit -e pytap.wide -- {py} {f}; touch {m}; sleep 60",
            p = pytap_bin().display(),
            f = path.display(),
            m = marker.display()
        ),
    );
    wait_until("both runs", SECS20, || marker.exists());
    let text = term.history_joined();
    for line in text.lines() {
        assert!(line.trim_end().chars().count() <= 130, "too wide: {line}");
    }
    // Shortened in the middle: the end (the file name) stays.
    assert!(text.contains("…"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("wide.py") && l.contains("wide")),
        "{text}"
    );
    assert!(text.contains("pytap.wide('yyy"), "{text}");
}

/// The first number on the screen's `pytap profile: N samples` line.
fn profile_samples(screen: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.starts_with("pytap profile: "))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The TOTAL% of the row of `function` in a top table.
fn total_share(screen: &str, function: &str) -> Option<f64> {
    let row = screen
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(function))?;
    row.split_whitespace()
        .nth(3)?
        .trim_end_matches('%')
        .parse()
        .ok()
}

#[test]
fn the_live_profile_view_redraws_in_place_and_ends_with_the_whole_table() {
    require_kernel();
    let mut target = ChildGuard::spawn(
        Command::new(&fixture("3.13").binary)
            .arg(crate::harness::root().join("tests/py/sampled.py"))
            .arg("ratio"),
    );
    target.wait_for_line("ready", SECS20);
    let pid = target.pid();
    let marker = scratch("live-profile").join("done");
    let _ = std::fs::remove_file(&marker);
    let (cols, rows) = (72, 16);
    let term = Tmux::start(
        "live-profile",
        cols,
        rows,
        // bash, which goes on after a child that handled Ctrl-C (dash
        // ends with it).
        &format!(
            "exec bash -c '{} profile -p {pid} --rate 199; echo $? > {m}; sleep 60'",
            pytap_bin().display(),
            m = marker.display()
        ),
    );
    term.wait_for("the live profile", SECS20, |s| {
        profile_samples(s).is_some_and(|n| n > 0) && s.contains("three")
    });
    let first = profile_samples(&term.screen()).unwrap();
    // Redrawn every second: more samples, one header on the screen.
    term.wait_for("a redraw with more samples", SECS20, |s| {
        profile_samples(s).is_some_and(|n| n >= first + 300)
    });
    let screen = term.screen();
    assert_eq!(
        screen.matches("pytap profile: ").count(),
        1,
        "a redraw, not a scroll:\n{screen}"
    );
    // Rows fit the terminal: as many as it has, none wider.
    for line in term.history_joined().lines() {
        assert!(
            line.trim_end().chars().count() <= cols.into(),
            "too wide: {line}"
        );
    }
    let three = total_share(&screen, "three").expect("a row for three()");
    assert!(
        (three - 75.0).abs() <= 10.0,
        "three() at {three} %:\n{screen}"
    );
    term.send("C-c");
    wait_until("pytap to end", SECS20, || marker.exists());
    wait_until("its status", SECS20, || {
        std::fs::read_to_string(&marker).is_ok_and(|m| m.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "0\n");
    // The end: the whole table stays on the screen, then the summary.
    let end = term.history_joined();
    assert!(end.contains("burn ("), "{end}");
    assert!(end.contains("stopped by SIGINT"), "{end}");
    assert!(end.contains(" 0 lost"), "{end}");
    assert!(target.is_running());
    target.kill();
}
