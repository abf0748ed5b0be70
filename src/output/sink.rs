//! Where a tool's output goes: stdout or `-o FILE`, written in whole lines.
//!
//! Output that people or other programs read while pytap runs must arrive
//! while it runs, and must not be torn:
//!
//! - On a terminal every complete line is written at once (line buffering).
//! - On pipes and files lines are buffered, and the run loop flushes
//!   whenever it goes idle and at least every 100 ms while events arrive
//!   (the run loop's `FLUSH_EVERY`).
//! - Every `write(2)` ends on a line boundary and, on a pipe, stays within
//!   [`PIPE_BUF`] bytes where the lines fit, which the kernel writes to a
//!   pipe atomically: when the traced command shares pytap's stdout, its
//!   output can fall between pytap's lines but never inside one. Files get
//!   all the whole lines buffered in one write. A line longer than the
//!   buffer (a script that prints without newlines) is written as it
//!   comes, so output is never held back or rescanned without bound.
//! - Every error names the file (`writing /dev/full: No space left on
//!   device`) and keeps its kind, so a reader that went away (`EPIPE`) is
//!   still recognised as such.
//! - Pipes and files are written by a thread of their own ([`Writer`]):
//!   a write the kernel holds back (a slow disk's dirty pages throttled, a
//!   reader that pauses) must not stop pytap draining the rings, which
//!   fill in tens of milliseconds at CPython's full rate. Up to
//!   [`BACKLOG`] bytes wait for it; past that the tool waits too, as it
//!   would writing itself. A write error is reported by the next write or
//!   flush; [`Sink::settle`] waits for everything handed over. Notices
//!   wait for it (a while) too, so a summary comes after the output it
//!   sums up ([`settle_all`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest write the kernel keeps whole on a pipe (`PIPE_BUF`, POSIX:
/// at least 512; 4096 on Linux).
pub const PIPE_BUF: usize = 4096;

/// Buffered bytes that trigger a write even before a flush.
const BUFFER: usize = 64 * 1024;

/// Output handed to the writer thread and not yet written, at most: about
/// 200 ms of `trace --format jsonl` at the fastest rate measured here (1.3
/// million events a second, 230 MB/s of JSON, with the uprobe trap at 550
/// ns), on top of what the rings hold. 16 MiB lost events behind a reader
/// pausing 60 ms once the trap got that fast. Memory only a stalled output
/// uses: nothing is allocated before it is needed.
pub const BACKLOG: usize = 48 << 20;

/// How long a notice waits for output handed over before it (a reader
/// that stopped reading must not hold pytap's messages back for ever).
const NOTICE_WAIT: Duration = Duration::from_secs(2);

/// What the output is, which decides how it is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// A terminal: line-buffered.
    Terminal,
    /// A pipe or socket: buffered, flushed by the run loop; its reader may go away.
    Pipe,
    /// A regular file or device: buffered, flushed by the run loop.
    File,
}

/// A line-oriented output (see the module docs).
#[derive(Debug)]
pub struct Sink {
    file: File,
    name: String,
    kind: SinkKind,
    buf: Vec<u8>,
    /// Where the last whole line in `buf` ends (0: none), kept as bytes
    /// come so that no write scans what was buffered before.
    lines_end: usize,
    /// The thread writing a pipe or a file (a terminal is written here).
    writer: Option<Writer>,
}

impl Sink {
    /// pytap's standard output (a duplicate of fd 1, written unbuffered by
    /// the standard library, buffered here).
    pub fn stdout() -> io::Result<Sink> {
        let stdout = io::stdout();
        let fd = stdout.as_fd().try_clone_to_owned()?;
        let kind = if stdout.is_terminal() {
            SinkKind::Terminal
        } else {
            kind_of(&File::from(fd.try_clone()?))
        };
        Ok(Sink::new(File::from(fd), "stdout".into(), kind))
    }

    /// `-o FILE`, created (or truncated) now, so that a bad path fails
    /// before anything is attached.
    pub fn create(path: &Path) -> io::Result<Sink> {
        let file = File::create(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
        })?;
        let kind = kind_of(&file);
        Ok(Sink::new(file, path.display().to_string(), kind))
    }

    fn new(file: File, name: String, kind: SinkKind) -> Sink {
        // Without a thread (none can be made, or the descriptor not
        // duplicated) the sink writes itself, as a terminal's does.
        let writer = match kind {
            SinkKind::Terminal => None,
            SinkKind::Pipe | SinkKind::File => file
                .try_clone()
                .ok()
                .and_then(|dup| Writer::start(dup, name.clone(), chunk_of(kind))),
        };
        Sink {
            file,
            name,
            kind,
            buf: Vec::with_capacity(BUFFER),
            lines_end: 0,
            writer,
        }
    }

    /// What the output is.
    pub fn kind(&self) -> SinkKind {
        self.kind
    }

    /// The name errors use (`stdout` or the path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor, for watching a pipe's reader go away (`EPOLLERR`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Writes buffered complete lines (and, with `all`, a trailing partial
    /// one; without it, a partial line that filled the buffer) in
    /// line-aligned chunks of at most [`PIPE_BUF`] bytes, a longer line
    /// alone in its own write.
    fn write_out(&mut self, all: bool) -> io::Result<()> {
        let end = if all || (self.lines_end == 0 && self.buf.len() >= BUFFER) {
            self.buf.len()
        } else {
            self.lines_end
        };
        if let Some(writer) = &self.writer {
            if end == 0 {
                return writer.error();
            }
            // The buffer goes to the writer whole; what follows `end` (a
            // partial line) starts the next one.
            let mut next = writer.spare();
            next.extend_from_slice(&self.buf[end..]);
            let mut full = std::mem::replace(&mut self.buf, next);
            full.truncate(end);
            self.lines_end = 0;
            return writer.hand_over(full);
        }
        let written = write_chunks(
            &mut self.file,
            &self.buf[..end],
            chunk_of(self.kind),
            &self.name,
        );
        self.forget(written.as_ref().map_or_else(|(n, _)| *n, |n| *n));
        written.map(|_| ()).map_err(|(_, e)| e)
    }

    /// Writes and hands over everything buffered, then waits until the
    /// writer thread has written it all: its error, if it had one.
    pub fn settle(&mut self) -> io::Result<()> {
        self.write_out(true)?;
        match &self.writer {
            Some(writer) => writer.settle(),
            None => Ok(()),
        }
    }

    /// Drops the first `n` buffered bytes (written).
    fn forget(&mut self, n: usize) {
        self.buf.drain(..n);
        self.lines_end = self.lines_end.saturating_sub(n);
    }
}

/// Only a pipe has another writer whose output could land inside a larger
/// write; a file gets every whole line in one write.
fn chunk_of(kind: SinkKind) -> usize {
    match kind {
        SinkKind::Pipe => PIPE_BUF,
        SinkKind::Terminal | SinkKind::File => usize::MAX,
    }
}

/// Writes `buf` (whole lines, or everything) in [`next_chunk`]s: the bytes
/// written, or how many were before the error, named after the output.
fn write_chunks(
    file: &mut File,
    buf: &[u8],
    chunk: usize,
    name: &str,
) -> Result<usize, (usize, io::Error)> {
    let mut start = 0;
    while let Some(len) = next_chunk(&buf[start..], chunk) {
        if let Err(e) = file.write_all(&buf[start..start + len]) {
            return Err((
                start,
                io::Error::new(e.kind(), format!("writing {name}: {e}")),
            ));
        }
        start += len;
    }
    Ok(start)
}

/// The length of the next write out of `rest`, which ends where a line
/// ends or is to be written whole: the most whole lines that fit in
/// `chunk` bytes, else one longer line alone (or all of `rest` when it
/// holds no line end); `None` when nothing is left.
fn next_chunk(rest: &[u8], chunk: usize) -> Option<usize> {
    if rest.is_empty() {
        return None;
    }
    if rest.len() <= chunk {
        return Some(rest.len());
    }
    let window = &rest[..chunk];
    match memchr::memrchr(b'\n', window) {
        Some(i) => Some(i + 1),
        None => Some(memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1)),
    }
}

fn kind_of(file: &File) -> SinkKind {
    match file.metadata() {
        Ok(m) if m.file_type().is_fifo() || m.file_type().is_socket() => SinkKind::Pipe,
        _ => SinkKind::File,
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let newline = memchr::memrchr(b'\n', data);
        if let Some(i) = newline {
            self.lines_end = self.buf.len() + i + 1;
        }
        self.buf.extend_from_slice(data);
        let due = match self.kind {
            SinkKind::Terminal => newline.is_some(),
            SinkKind::Pipe | SinkKind::File => self.buf.len() >= BUFFER,
        };
        if due {
            self.write_out(false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out(true)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Error paths drop the sink without flushing; what was written
        // still goes out if it can (as std's BufWriter does). The writer
        // thread ends when its field is dropped, after this.
        let _ = self.settle();
    }
}

/// Bytes that are not lines (a recording), written in large blocks by a
/// [`Writer`] thread: the same protection from a held-back write as a
/// [`Sink`]'s. [`Blocks::settle`] waits for everything written.
#[derive(Debug)]
pub struct Blocks {
    buf: Vec<u8>,
    writer: Option<Writer>,
    /// Without a thread, written here.
    file: File,
    name: String,
}

impl Blocks {
    /// Writes `file`, whose errors say they were writing `name`.
    pub fn new(file: File, name: String) -> Blocks {
        let writer = file
            .try_clone()
            .ok()
            .and_then(|dup| Writer::start(dup, name.clone(), usize::MAX));
        Blocks {
            buf: Vec::with_capacity(BUFFER),
            writer,
            file,
            name,
        }
    }

    /// Hands over everything buffered and waits until it is written.
    pub fn settle(&mut self) -> io::Result<()> {
        self.flush()?;
        match &self.writer {
            Some(writer) => writer.settle(),
            None => Ok(()),
        }
    }
}

impl Write for Blocks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BUFFER {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.writer {
            Some(writer) if self.buf.is_empty() => writer.error(),
            Some(writer) => writer.hand_over(std::mem::replace(&mut self.buf, writer.spare())),
            None => {
                let written = write_chunks(&mut self.file, &self.buf, usize::MAX, &self.name);
                self.buf.clear();
                written.map(|_| ()).map_err(|(_, e)| e)
            }
        }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        let _ = self.settle();
    }
}

/// A thread writing what a [`Sink`] or [`Blocks`] hands over, in order.
#[derive(Debug)]
struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<Backlog>,
    /// Signalled when something is handed over, written, or the end asked.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Backlog {
    /// Buffers handed over, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Their bytes, with the one being written.
    bytes: usize,
    /// A buffer is being written (taken off the queue).
    writing: bool,
    /// Written buffers, emptied, for the sink to fill again.
    spare: Vec<Vec<u8>>,
    /// The first write error (what it said, and its kind): nothing more is
    /// written after it.
    error: Option<(io::ErrorKind, String)>,
    /// The sink is gone: write what is left and end.
    stop: bool,
}

/// The writers alive, for [`settle_all`].
static WRITERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it leaves nothing half-done that matters here.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    fn start(mut file: File, name: String, chunk: usize) -> Option<Writer> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        // Started with the signals blocked: see `blocked_while`.
        let thread = pytap_sys::signal::blocked_while(|| {
            std::thread::Builder::new()
                .name("pytap-writer".into())
                .spawn(move || {
                    // The run loop reads the signals (SIGCHLD among them).
                    if pytap_sys::signal::leave_to_signalfd().is_err() {
                        theirs.fail(io::Error::other(format!(
                            "writing {name}: cannot block signals in the writer thread"
                        )));
                        return;
                    }
                    theirs.write_all(&mut file, &name, chunk)
                })
        })
        .ok()?
        .ok()?;
        let mut writers = lock(&WRITERS);
        writers.retain(|w| w.strong_count() > 0);
        writers.push(Arc::downgrade(&shared));
        Some(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// An empty buffer to fill (a written one when there is one).
    fn spare(&self) -> Vec<u8> {
        lock(&self.shared.state)
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER))
    }

    /// Queues `buf` to be written, first waiting while [`BACKLOG`] bytes
    /// are; the error an earlier write met, if one did.
    fn hand_over(&self, buf: Vec<u8>) -> io::Result<()> {
        let mut state = lock(&self.shared.state);
        while state.error.is_none() && state.bytes > 0 && state.bytes + buf.len() > BACKLOG {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(e) = as_error(&state.error) {
            return Err(e);
        }
        state.bytes += buf.len();
        state.queue.push_back(buf);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// The error an earlier write met, if one did.
    fn error(&self) -> io::Result<()> {
        as_error(&lock(&self.shared.state).error).map_or(Ok(()), Err)
    }

    /// Waits until everything handed over is written.
    fn settle(&self) -> io::Result<()> {
        self.shared.settle(None);
        self.error()
    }
}

impl Drop for Writer {
    /// Lets the thread write what is left, and waits for it to end.
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// The writer thread: each buffer in turn, until the sink is gone.
    fn write_all(&self, file: &mut File, name: &str, chunk: usize) {
        let mut state = lock(&self.state);
        loop {
            let Some(mut buf) = state.queue.pop_front() else {
                if state.stop {
                    return;
                }
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            state.writing = true;
            let failed = state.error.is_some();
            drop(state);
            let result = if failed {
                Ok(0)
            } else {
                write_chunks(file, &buf, chunk, name)
            };
            state = lock(&self.state);
            state.writing = false;
            state.bytes -= buf.len();
            if let Err((_, e)) = result {
                state.error.get_or_insert((e.kind(), e.to_string()));
            }
            buf.clear();
            if state.spare.len() < 4 {
                state.spare.push(buf);
            }
            self.changed.notify_all();
        }
    }

    /// The writer cannot write: every hand-over from now on says why.
    fn fail(&self, e: io::Error) {
        let mut state = lock(&self.state);
        state.error.get_or_insert((e.kind(), e.to_string()));
        state.queue.clear();
        state.bytes = 0;
        self.changed.notify_all();
    }

    fn settle(&self, limit: Option<Duration>) {
        let deadline = limit.map(|l| Instant::now() + l);
        let mut state = lock(&self.state);
        while (!state.queue.is_empty() || state.writing) && state.error.is_none() {
            state = match deadline {
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    self.changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

fn as_error(error: &Option<(io::ErrorKind, String)>) -> Option<io::Error> {
    error
        .as_ref()
        .map(|(kind, text)| io::Error::new(*kind, text.clone()))
}

/// Waits (a while at most) until every sink's writer thread has written
/// what it was handed: a notice printed now comes after that output.
pub fn settle_all() {
    let writers: Vec<Arc<Shared>> = lock(&WRITERS).iter().filter_map(Weak::upgrade).collect();
    for shared in writers {
        shared.settle(Some(NOTICE_WAIT));
    }
}

#[cfg(test)]
mod tests;
