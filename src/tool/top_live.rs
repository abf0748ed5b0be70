//! `pytap top`'s live full-screen view (ratatui): the same counts as the
//! plain view, redrawn every interval; `s` changes the sort column, `p`
//! pauses the display (counting goes on), `q`, Esc or Ctrl-C quit. The
//! terminal is restored on every way out (quit, target exit, error, signal),
//! and the last view is then printed as plain text, so the final partial
//! interval is never lost.

use std::collections::BTreeSet;
use std::io::{self, Stdout, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Constraint;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Row as TableRow, Table};

use crate::cpython::Marker;
use crate::engine::codegen::Handler;
use crate::engine::decode::Event;
use crate::engine::run::Consumer;
use crate::engine::session::Session;
use crate::error::ExitCode;
use crate::output::event::Format;
use crate::tool::common::{self, MakeHandler};
use crate::tool::names::FuncNames;
use crate::tool::top::{Deltas, Row, TopRequest, snapshot, write_view};

/// How often keys are read and the screen may change.
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

struct LiveTop {
    guard: TerminalGuard,
    interval: Duration,
    limit: usize,
    names: FuncNames,
    deltas: Deltas,
    rows: Vec<Row>,
    number: u64,
    since: Instant,
    shown_secs: f64,
    sort: SortBy,
    paused: bool,
    quit: bool,
}

impl LiveTop {
    fn keys(&mut self) -> Result<bool> {
        let mut changed = false;
        while event::poll(Duration::ZERO)? {
            if let TermEvent::Key(key) = event::read()? {
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        self.quit = true
                    }
                    KeyCode::Char('s') => {
                        self.sort = self.sort.next();
                        self.sort.sort(&mut self.rows);
                    }
                    KeyCode::Char('p') | KeyCode::Char(' ') => self.paused = !self.paused,
                    _ => {}
                }
                changed = true;
            }
        }
        Ok(changed)
    }

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
                    Cell::from(r.pid.to_string()),
                    Cell::from(r.filename.clone()),
                    Cell::from(r.lineno.to_string()),
                    Cell::from(r.funcname.clone()),
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
        terminal.draw(|f| f.render_widget(table, f.area()))?;
        Ok(())
    }
}

impl Consumer for LiveTop {
    fn event(&mut self, event: &Event<'_>, session: &Session) -> Result<()> {
        self.names.resolve(event, session);
        Ok(())
    }

    fn tick(&mut self, session: &Session) -> Result<()> {
        let mut redraw = self.keys()?;
        if self.since.elapsed() >= self.interval && !self.paused {
            self.shown_secs = self.since.elapsed().as_secs_f64();
            self.since = Instant::now();
            self.rows = self.deltas.rows(&snapshot(session)?, &self.names);
            self.sort.sort(&mut self.rows);
            self.number += 1;
            redraw = true;
        }
        if redraw {
            self.draw()?;
        }
        Ok(())
    }

    fn finish(&mut self, session: &Session) -> Result<()> {
        self.guard.restore();
        // What came after the last view (or during a pause): counted, shown.
        self.shown_secs = self.since.elapsed().as_secs_f64();
        let mut rows = self.deltas.rows(&snapshot(session)?, &self.names);
        self.sort.sort(&mut rows);
        self.number += 1;
        let mut out = io::stdout().lock();
        write_view(
            &mut out,
            Format::Text,
            self.number,
            self.shown_secs,
            &rows,
            self.limit,
        )?;
        out.flush()?;
        Ok(())
    }

    fn wants_stop(&self) -> bool {
        self.quit
    }

    fn recovered(&self) -> u64 {
        self.names.strings.recovery.recovered
    }
}

/// Runs the live view.
pub fn run<H: Handler>(
    request: &TopRequest,
    markers: &BTreeSet<Marker>,
    make_handler: &mut MakeHandler<'_, H>,
) -> Result<ExitCode> {
    let mut view = LiveTop {
        guard: TerminalGuard::enter()?,
        interval: request.interval,
        limit: request.limit,
        names: FuncNames::default(),
        deltas: Deltas::default(),
        rows: Vec::new(),
        number: 0,
        since: Instant::now(),
        shown_secs: 0.0,
        sort: SortBy::Calls,
        paused: false,
        quit: false,
    };
    view.draw()?;
    let outcome = common::stream_with(
        &request.stream,
        markers,
        true,
        Some(POLL),
        make_handler,
        &mut view,
    );
    view.guard.restore();
    Ok(common::exit_code(&outcome?))
}
