//! The sinks and their writer thread: writes line-aligned within
//! PIPE_BUF, every byte reaching a pipe, errors that name the file, a
//! stalled reader holding the tool back only past the backlog.

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
    assert!(sink.writer.is_some());
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
    let e = sink.settle().unwrap_err();
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
    assert_eq!(sink.settle().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    // And the next write or flush says so too.
    assert_eq!(sink.flush().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    let e = Sink::create(Path::new("/nonexistent/dir/out")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot create /nonexistent/dir/out: "),
        "{e}"
    );
}
#[test]
fn a_stalled_reader_holds_the_tool_back_only_past_the_backlog() {
    // The reader reads nothing until told: everything up to the
    // backlog must be taken at once (pytap keeps draining the rings),
    // and all of it arrive, in order, once the reader reads.
    let (a, mut b) = UnixStream::pair().unwrap();
    let fd = a.as_fd().try_clone_to_owned().unwrap();
    drop(a);
    let (told, reading) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        reading.recv().unwrap();
        let mut all = Vec::new();
        b.read_to_end(&mut all).unwrap();
        all
    });
    let mut sink = Sink::new(File::from(fd), "test".into(), SinkKind::Pipe);
    let lines = (BACKLOG - 2 * BUFFER) / 16;
    let (done, finished) = std::sync::mpsc::channel();
    let writing = std::thread::spawn(move || {
        for n in 0..lines {
            writeln!(sink, "line {n:>10}").unwrap();
        }
        sink.flush().unwrap();
        done.send(()).unwrap();
        sink
    });
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("writes to a stalled reader within the backlog returned");
    told.send(()).unwrap();
    let sink = writing.join().unwrap();
    drop(sink);
    let all = reader.join().unwrap();
    assert_eq!(all.len(), lines * 16);
    assert!(all.starts_with(b"line          0\n"));
    let last = format!("line {:>10}\n", lines - 1);
    assert!(all.ends_with(last.as_bytes()));
}
