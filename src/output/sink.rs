//! Where a tool's output goes: stdout or `-o FILE`, written in whole lines.
//!
//! Output that people or other programs read while pytap runs must arrive
//! while it runs, and must not be torn:
//!
//! - On a terminal every complete line is written at once (line buffering).
//! - On pipes and files lines are buffered, and the run loop flushes
//!   whenever it goes idle and at least every [`FLUSH_EVERY`] while events
//!   arrive ([`crate::engine::run`]).
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

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

/// The largest write the kernel keeps whole on a pipe (`PIPE_BUF`, POSIX:
/// at least 512; 4096 on Linux).
pub const PIPE_BUF: usize = 4096;

/// How long buffered output may wait while events keep arriving.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Buffered bytes that trigger a write even before a flush.
const BUFFER: usize = 64 * 1024;

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
        Sink {
            file,
            name,
            kind,
            buf: Vec::with_capacity(BUFFER),
            lines_end: 0,
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
        // Only a pipe has another writer whose output could land inside a
        // larger write; a file gets every whole line in one write.
        let chunk = match self.kind {
            SinkKind::Pipe => PIPE_BUF,
            SinkKind::Terminal | SinkKind::File => usize::MAX,
        };
        let mut start = 0;
        while let Some(len) = next_chunk(&self.buf[start..end], chunk) {
            if let Err(e) = self.file.write_all(&self.buf[start..start + len]) {
                self.forget(start);
                return Err(io::Error::new(
                    e.kind(),
                    format!("writing {}: {e}", self.name),
                ));
            }
            start += len;
        }
        self.forget(start);
        Ok(())
    }

    /// Drops the first `n` buffered bytes (written).
    fn forget(&mut self, n: usize) {
        self.buf.drain(..n);
        self.lines_end = self.lines_end.saturating_sub(n);
    }
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
        // still goes out if it can (as std's BufWriter does).
        let _ = self.write_out(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// The writes a buffer is cut into: its whole lines, or everything
    /// with `all`.
    fn chunks(buf: &[u8], all: bool) -> Vec<usize> {
        let end = if all {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(len) = next_chunk(&buf[start..end], PIPE_BUF) {
            out.push(len);
            start += len;
        }
        out
    }

    #[test]
    fn writes_are_line_aligned_and_within_pipe_buf() {
        let mut line = vec![b'x'; 99];
        line.push(b'\n');
        let hundred: Vec<u8> = std::iter::repeat_n(line.clone(), 100).flatten().collect();
        // 100 lines of 100 bytes: 40 lines (4000 bytes) per write.
        assert_eq!(chunks(&hundred, false), [4000, 4000, 2000]);
        // A line longer than PIPE_BUF goes alone; a partial line waits
        // unless everything is flushed.
        let mut mixed = b"short\n".to_vec();
        mixed.extend(std::iter::repeat_n(b'y', 6000));
        mixed.extend_from_slice(b"\npartial");
        assert_eq!(chunks(&mixed, false), [6, 6001]);
        assert_eq!(chunks(&mixed, true), [6, 6001, 7]);
        assert_eq!(chunks(b"", true), Vec::<usize>::new());
        // A file takes every whole line at once.
        assert_eq!(next_chunk(&hundred, usize::MAX), Some(10_000));
    }

    #[test]
    fn a_line_longer_than_the_buffer_is_written_as_it_comes() {
        // A script printing a literal `\\n` (the HOWTO's
        // show-call-hierarchy.stp) writes one endless line: it must go out
        // once the buffer is full, not wait for a newline, and each write
        // must look only at what it adds (this took minutes when every
        // write rescanned the buffer).
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_fd().try_clone_to_owned().unwrap();
        drop(a);
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            b.read_to_end(&mut all).unwrap();
            all
        });
        let mut sink = Sink::new(File::from(fd), "test".into(), SinkKind::File);
        let piece = [b'z'; 100];
        for _ in 0..200_000 {
            sink.write_all(&piece).unwrap();
            assert!(sink.buf.len() <= BUFFER + piece.len());
        }
        sink.write_all(b"\nend").unwrap();
        drop(sink);
        let all = reader.join().unwrap();
        assert_eq!(all.len(), 200_000 * 100 + 4);
        assert!(all.ends_with(b"z\nend"));
    }

    #[test]
    fn a_pipe_receives_every_byte_and_a_partial_line_waits() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_fd().try_clone_to_owned().unwrap();
        drop(a);
        let mut sink = Sink::new(File::from(fd), "test".into(), SinkKind::Pipe);
        sink.write_all(b"one\ntwo\npart").unwrap();
        sink.write_out(false).unwrap();
        assert_eq!(sink.buf, b"part");
        sink.write_all(b"ial\n").unwrap();
        sink.flush().unwrap();
        assert!(sink.buf.is_empty());
        drop(sink);
        let mut all = Vec::new();
        b.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"one\ntwo\npartial\n");
    }

    #[test]
    fn errors_name_the_file_and_keep_their_kind() {
        let mut sink = Sink::create(Path::new("/dev/full")).unwrap();
        sink.write_all(b"x\n").unwrap();
        let e = sink.flush().unwrap_err();
        assert_eq!(
            e.to_string(),
            "writing /dev/full: No space left on device (os error 28)"
        );
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let fd = a.as_fd().try_clone_to_owned().unwrap();
        let mut sink = Sink::new(File::from(fd), "stdout".into(), SinkKind::Pipe);
        sink.write_all(b"x\n").unwrap();
        assert_eq!(sink.flush().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        let e = Sink::create(Path::new("/nonexistent/dir/out")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot create /nonexistent/dir/out: "),
            "{e}"
        );
    }
}
