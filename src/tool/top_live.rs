//! `pytap top`'s live full-screen view (ratatui): the same counts as the
//! plain view, redrawn every interval; `s` changes the sort column, `p`
//! pauses the display (counting goes on), `q`, Esc or Ctrl-C quit.
//!
//! The run loop owns the terminal's input (keys arrive through
//! [`Consumer::input`]), so the view never spins on a terminal that went
//! away: end of file or an error on it ends the run, as SIGHUP does, and
//! pytap detaches, restores and reaps whatever happens.
//!
//! Nothing else may draw over the view:
//! - pytap's own notices (what it armed, what it skipped) are held while
//!   the view is open, the latest shown on its status line, and all
//!   printed when it closes ([`crate::output::notice`]);
//! - a launched command runs on a pseudo-terminal of its own: it still
//!   sees a terminal (and keeps its buffering), and what it writes is kept
//!   and printed when the view closes, or written to `--command-output
//!   FILE` as it comes. If the view is closed while the command still
//!   runs, pytap detaches its probes and relays the command's terminal
//!   until it exits, so nothing it writes or reads is lost.
//!
//! The terminal is restored on every way out, and the last view is then
//! printed as plain text, so the final partial interval is never lost.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Stdout, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use pytap_sys::poll::Poller;
use pytap_sys::pty::Pty;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Table};

use crate::cpython::Marker;
use crate::engine::codegen::Handler;
use crate::engine::consumer::{Consumer, End};
use crate::engine::decode::Event;
use crate::engine::source::Source;
use crate::error::ExitCode;
use crate::notice;
use crate::output::escape;
use crate::output::event::Format;
use crate::output::notice;
use crate::runner::live::TargetSpec;
use crate::runner::report;
use crate::runner::tool_run::{self, MakeHandler, ToolRun};
use crate::tool::names::FuncNames;
use crate::tool::top::{
    Deltas, InProcessCounts, Interval, Row, TopRequest, ViewLayout, write_view,
};

/// How often the screen may change.
const POLL: Duration = Duration::from_millis(50);

/// Sort columns, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Most calls first.
    Calls,
    /// Process id.
    Pid,
    /// File name.
    Filename,
    /// Function name.
    Function,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::Calls => SortBy::Pid,
            SortBy::Pid => SortBy::Filename,
            SortBy::Filename => SortBy::Function,
            SortBy::Function => SortBy::Calls,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SortBy::Calls => "calls",
            SortBy::Pid => "pid",
            SortBy::Filename => "filename",
            SortBy::Function => "function",
        }
    }

    /// Sorts rows by this column (ties by calls, most first).
    pub fn sort(self, rows: &mut [Row]) {
        rows.sort_by(|a, b| {
            let by = match self {
                SortBy::Calls => b.calls.cmp(&a.calls),
                SortBy::Pid => a.pid.cmp(&b.pid),
                SortBy::Filename => a.filename.cmp(&b.filename).then(a.lineno.cmp(&b.lineno)),
                SortBy::Function => a.funcname.cmp(&b.funcname),
            };
            by.then(b.calls.cmp(&a.calls))
        });
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Quit the view.
    Quit,
    /// Next sort column.
    Sort,
    /// Pause or resume the display.
    Pause,
}

/// The keys in bytes read from the terminal (raw mode): `q`, Ctrl-C and a
/// lone Esc quit, `s` sorts, `p` or space pause. Escape sequences (arrow
/// keys) are ignored.
pub fn keys(bytes: &[u8]) -> Vec<Key> {
    if bytes == [0x1b] {
        return vec![Key::Quit];
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // ESC [ ... final byte: skip the whole sequence.
            0x1b => {
                i += 1;
                if bytes.get(i) == Some(&b'[') || bytes.get(i) == Some(&b'O') {
                    i += 1;
                    while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                        i += 1;
                    }
                }
            }
            b'q' | b'Q' | 0x03 => out.push(Key::Quit),
            b's' | b'S' => out.push(Key::Sort),
            b'p' | b'P' | b' ' => out.push(Key::Pause),
            _ => {}
        }
        i += 1;
    }
    out
}

/// Puts the terminal back however the view ends.
struct TerminalGuard {
    terminal: Option<Terminal<CrosstermBackend<Stdout>>>,
}

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard> {
        enable_raw_mode()?;
        let mut guard = TerminalGuard { terminal: None };
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        guard.terminal = Some(Terminal::new(CrosstermBackend::new(io::stdout()))?);
        Ok(guard)
    }

    fn restore(&mut self) {
        if self.terminal.take().is_some() {
            let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        }
        let _ = disable_raw_mode();
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Where the launched command's output goes while the view is open.
enum Captured {
    /// Kept, printed when the view closes.
    Memory(Vec<u8>),
    /// `--command-output FILE`.
    File(File, String),
}

struct LiveTop {
    guard: TerminalGuard,
    interval: Duration,
    limit: usize,
    names: FuncNames,
    deltas: Deltas,
    in_process: InProcessCounts,
    rows: Vec<Row>,
    number: u64,
    since: Instant,
    shown_secs: f64,
    sort: SortBy,
    paused: bool,
    quit: bool,
    calls: u64,
    redraw: bool,
    captured: Captured,
    /// The final partial interval, computed while the session still exists.
    last: Option<(u64, f64, Vec<Row>)>,
}

impl LiveTop {
    fn draw(&mut self) -> Result<()> {
        let Some(terminal) = self.guard.terminal.as_mut() else {
            return Ok(());
        };
        let total: u64 = self.rows.iter().map(|r| r.calls).sum();
        let title = format!(
            " pytap top: interval {} ({:.2} s), {total} calls (function__entry), {} functions, sorted by {}{}  [s]ort [p]ause [q]uit ",
            self.number,
            self.shown_secs,
            self.rows.len(),
            self.sort.name(),
            if self.paused { ", PAUSED" } else { "" }
        );
        let held = notice::held();
        let status = match held.last() {
            Some(last) if held.len() > 1 => {
                format!(
                    " pytap: {last} (+{} more when the view closes)",
                    held.len() - 1
                )
            }
            Some(last) => format!(" pytap: {last}"),
            None => String::new(),
        };
        let limit = if self.limit == 0 {
            usize::MAX
        } else {
            self.limit
        };
        let rows: Vec<TableRow> = self
            .rows
            .iter()
            .take(limit)
            .map(|r| {
                TableRow::new(vec![
                    Cell::from(crate::tool::top::pid_cell(r)),
                    Cell::from(escape::text(&r.filename).into_owned()),
                    Cell::from(r.lineno.to_string()),
                    Cell::from(escape::text(&r.funcname).into_owned()),
                    Cell::from(r.calls.to_string()),
                ])
            })
            .collect();
        let header = TableRow::new(vec!["PID", "FILENAME", "LINE", "FUNCTION", "CALLS"])
            .style(Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED));
        let widths = [
            Constraint::Length(8),
            Constraint::Min(30),
            Constraint::Length(6),
            Constraint::Length(30),
            Constraint::Length(10),
        ];
        let table = Table::new(rows, widths)
            .header(header)
            .block(Block::default().title(title).borders(Borders::ALL));
        terminal.draw(|f| {
            let [main, bottom] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(f.area());
            f.render_widget(table, main);
            f.render_widget(Paragraph::new(status.clone()), bottom);
        })?;
        Ok(())
    }
}

impl Consumer for LiveTop {
    fn event(&mut self, event: &Event<'_>, source: &dyn Source) -> Result<()> {
        self.names.resolve(event, source);
        self.in_process.count(event, source);
        Ok(())
    }

    fn input(&mut self, bytes: &[u8]) -> Result<()> {
        for key in keys(bytes) {
            match key {
                Key::Quit => self.quit = true,
                Key::Sort => {
                    self.sort = self.sort.next();
                    self.sort.sort(&mut self.rows);
                }
                Key::Pause => self.paused = !self.paused,
            }
            self.redraw = true;
        }
        Ok(())
    }

    fn command_output(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.captured {
            Captured::Memory(buf) => buf.extend_from_slice(bytes),
            Captured::File(file, name) => file
                .write_all(bytes)
                .map_err(|e| anyhow::anyhow!("writing {name}: {e}"))?,
        }
        Ok(())
    }

    fn tick(&mut self, source: &dyn Source) -> Result<()> {
        if self.since.elapsed() >= self.interval && !self.paused {
            self.shown_secs = self.since.elapsed().as_secs_f64();
            self.since = Instant::now();
            self.rows = self
                .deltas
                .rows(&self.in_process.with_kernel(source)?, &self.names);
            self.calls += self.rows.iter().map(|r| r.calls).sum::<u64>();
            self.sort.sort(&mut self.rows);
            self.number += 1;
            self.redraw = true;
        }
        if std::mem::take(&mut self.redraw) {
            // A terminal that went away ends the run through its input;
            // drawing errors until then are not the run's.
            let _ = self.draw();
        }
        Ok(())
    }

    fn finish(&mut self, source: &dyn Source) -> Result<()> {
        self.guard.restore();
        // What came after the last view (or during a pause): counted, shown.
        let secs = self.since.elapsed().as_secs_f64();
        let mut rows = self
            .deltas
            .rows(&self.in_process.with_kernel(source)?, &self.names);
        self.calls += rows.iter().map(|r| r.calls).sum::<u64>();
        self.sort.sort(&mut rows);
        self.number += 1;
        self.last = Some((self.number, secs, rows));
        Ok(())
    }

    fn wants_stop(&self) -> bool {
        self.quit
    }

    fn recovered(&self) -> u64 {
        self.names.strings.recovery.recovered
    }

    fn describe(&self, events: u64) -> String {
        crate::tool::top::describe(self.calls, events, self.in_process.any())
    }
}

/// The terminal to read keys from: stdin when it is one, else `/dev/tty`.
fn key_source() -> Result<OwnedFd> {
    let stdin = io::stdin();
    if io::IsTerminal::is_terminal(&stdin) {
        return Ok(stdin.as_fd().try_clone_to_owned()?);
    }
    Ok(File::open("/dev/tty")?.into())
}

/// Runs the live view.
pub fn run<H: Handler + 'static>(
    request: &TopRequest,
    markers: &BTreeSet<Marker>,
    make_handler: &mut MakeHandler<'_, H>,
) -> Result<ExitCode> {
    let mut stream = request.stream.clone();
    let launches = matches!(stream.target, TargetSpec::Command(_));
    let pty = if launches {
        let pty = Arc::new(Pty::open()?);
        pty.copy_size(io::stdout().as_fd());
        stream.command_terminal = Some(pty.clone());
        Some(pty)
    } else {
        None
    };
    let captured = match &request.command_output {
        Some(path) => Captured::File(
            File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        None => Captured::Memory(Vec::new()),
    };
    let keys_fd = Arc::new(key_source()?);
    let held = notice::hold();
    notice!("top counts {} (one per call)", Marker::FunctionEntry);
    let mut view = LiveTop {
        guard: TerminalGuard::enter()?,
        interval: request.interval,
        limit: request.limit,
        names: FuncNames::default(),
        deltas: Deltas::new(request.by_pid),
        in_process: InProcessCounts::default(),
        rows: Vec::new(),
        number: 0,
        since: Instant::now(),
        shown_secs: 0.0,
        sort: SortBy::Calls,
        paused: false,
        quit: false,
        calls: 0,
        redraw: true,
        captured,
        last: None,
    };
    let outcome = tool_run::stream_with(
        ToolRun {
            stream: &stream,
            markers,
            strict: true,
            tick: Some(POLL),
            make_handler,
        },
        &mut view,
        Some(keys_fd.clone()),
    );
    view.guard.restore();
    let (outcome, summary) = outcome?;
    crate::output::notice::emit_all(summary);
    let terminal_gone = matches!(
        outcome.end,
        End::TerminalLost | End::Signal(pytap_sys::signal::SIGHUP)
    );
    if !terminal_gone {
        // The last view, then what the command wrote, then the notices.
        let mut out = io::stdout().lock();
        if let Some((number, secs, rows)) = &view.last {
            let layout = ViewLayout {
                format: Format::Text,
                limit: view.limit,
                width: crate::output::fit::terminal_width(),
            };
            let interval = Interval {
                number: *number,
                secs: *secs,
                rows,
            };
            write_view(&mut out, &layout, &interval)?;
        }
        if let Captured::Memory(buf) = &view.captured {
            out.write_all(buf)?;
        }
        out.flush()?;
    }
    drop(held);
    if let (Some(pty), Some(pid)) = (pty, outcome.still_running) {
        if terminal_gone {
            // Closing the command's terminal hangs it up, as the user's
            // terminal going away would have; reap it.
            drop(stream);
            reap_after_hangup(pty, pid);
        } else {
            notice!("the traced command is still running: its terminal is relayed until it exits");
            relay(&pty, pid, &keys_fd)?;
        }
    }
    Ok(report::exit_code(&outcome))
}

/// Closes the command's terminal (a hang-up for it) and reaps it within a
/// second if it exits.
fn reap_after_hangup(pty: Arc<Pty>, pid: u32) {
    drop(pty);
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if !matches!(pytap_sys::process::try_wait(pid), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Copies the command's terminal to pytap's and pytap's keys to it (the
/// user's terminal in raw mode, so the command's terminal does the line
/// editing, echo and Ctrl-C) until the command exits or a stop signal
/// arrives.
fn relay(pty: &Pty, pid: u32, keys: &OwnedFd) -> Result<()> {
    const MASTER: u64 = 1;
    const KEYS: u64 = 2;
    const SIGNALS: u64 = 3;
    const EXIT: u64 = 4;
    let signals = tool_run::signals()?;
    let exited = pytap_sys::process::pidfd_open(pid)?;
    let poller = Poller::new()?;
    poller.add(pty.master.as_raw_fd(), MASTER)?;
    poller.add(keys.as_raw_fd(), KEYS)?;
    poller.add(signals.raw_fd(), SIGNALS)?;
    poller.add(exited.as_raw_fd(), EXIT)?;
    let _ = enable_raw_mode();
    let mut master = File::from(pty.master.try_clone()?);
    let mut input = File::from(keys.try_clone()?);
    let mut out = io::stdout();
    let mut buf = [0u8; 16 * 1024];
    let mut done = false;
    while !done {
        for token in poller.wait(None)? {
            match token {
                MASTER => match master.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        out.write_all(&buf[..n])?;
                        out.flush()?;
                    }
                    _ => {
                        let _ = poller.remove(pty.master.as_raw_fd());
                    }
                },
                KEYS => match input.read(&mut buf) {
                    Ok(n) if n > 0 => master.write_all(&buf[..n])?,
                    _ => done = true,
                },
                SIGNALS => {
                    while let Some(sig) = signals.read()? {
                        match sig {
                            pytap_sys::signal::SIGWINCH => pty.copy_size(io::stdout().as_fd()),
                            pytap_sys::signal::SIGCHLD => {}
                            _ => done = true,
                        }
                    }
                }
                _ => done = true,
            }
        }
    }
    // What it wrote last.
    while poller
        .wait(Some(Duration::ZERO))
        .is_ok_and(|r| r.contains(&MASTER))
    {
        match master.read(&mut buf) {
            Ok(n) if n > 0 => out.write_all(&buf[..n])?,
            _ => break,
        }
    }
    let _ = disable_raw_mode();
    let _ = pytap_sys::process::try_wait(pid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_raw_bytes() {
        assert_eq!(keys(b"q"), [Key::Quit]);
        assert_eq!(keys(&[0x03]), [Key::Quit]);
        assert_eq!(keys(&[0x1b]), [Key::Quit]);
        assert_eq!(keys(b"sp "), [Key::Sort, Key::Pause, Key::Pause]);
        // An arrow key is not Esc.
        assert_eq!(keys(b"\x1b[A"), Vec::<Key>::new());
        assert_eq!(keys(b"\x1b[1;5Cs"), [Key::Sort]);
        assert_eq!(keys(b"x"), Vec::<Key>::new());
    }
}
