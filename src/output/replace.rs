//! Output files that never clobber: `record -o` and `export -o` write a
//! file whole or leave what was there.
//!
//! - A path that does not exist yet, or names a regular file, is written
//!   under a temporary name beside it and renamed over it once it is good:
//!   a failed run (a mistyped target, a damaged input) leaves whatever was
//!   there before, never an empty or half-written file.
//! - A symbolic link is followed: its target is what gets replaced (the
//!   link stays a link).
//! - Anything else (a device such as `/dev/null` or `/dev/full`, a FIFO)
//!   is written through, never renamed over: it is not pytap's to replace.
//!   So is a regular file that cannot get a temporary file beside it
//!   (`/proc/...`, a directory pytap may not write), which fails, if it
//!   fails, at opening or writing, with the path in the message.
//! - A directory is refused.
//!
//! Every error names the path, and write errors keep their kind (a full
//! disk is `StorageFull`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::sink::Blocks;
use anyhow::{Context, Result, bail};

/// Symbolic links followed at most (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// An output file being written (see the module docs).
#[derive(Debug)]
pub struct OutputFile {
    /// The path as given, for messages.
    shown: String,
    file: File,
    /// When written under a temporary name: it, and where it goes.
    rename: Option<(PathBuf, PathBuf)>,
    done: bool,
}

impl OutputFile {
    /// Opens `path` for writing, as the module docs say.
    pub fn create(path: &Path) -> Result<OutputFile> {
        let shown = path.display().to_string();
        let target = follow_links(path).with_context(|| format!("cannot write {shown}"))?;
        let through = |target: &Path| -> Result<OutputFile> {
            let file = OpenOptions::new()
                .write(true)
                .open(target)
                .with_context(|| format!("cannot write {shown}"))?;
            Ok(OutputFile {
                shown: shown.clone(),
                file,
                rename: None,
                done: true,
            })
        };
        match std::fs::metadata(&target) {
            Ok(m) if m.is_dir() => bail!("cannot write {shown}: it is a directory"),
            Ok(m) if !m.is_file() => through(&target),
            Ok(_) => match beside(&target) {
                Ok((temporary, file)) => Ok(OutputFile {
                    shown,
                    file,
                    rename: Some((temporary, target)),
                    done: false,
                }),
                // No room beside it: the file itself, in place (truncated
                // only once it is open for writing).
                Err(_) => {
                    let out = through(&target)?;
                    out.file
                        .set_len(0)
                        .with_context(|| format!("cannot write {}", out.shown))?;
                    Ok(out)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (temporary, file) =
                    beside(&target).with_context(|| format!("cannot create {shown}"))?;
                Ok(OutputFile {
                    shown,
                    file,
                    rename: Some((temporary, target)),
                    done: false,
                })
            }
            Err(e) => Err(e).with_context(|| format!("cannot write {shown}")),
        }
    }

    /// A writer of large blocks on a thread of its own, through the same
    /// open file, whose errors name the path ([`Blocks`]).
    pub fn blocks(&self) -> Result<Blocks> {
        Ok(Blocks::new(self.file.try_clone()?, self.shown.clone()))
    }

    /// A handle to write through (the same open file), whose errors name
    /// the path.
    pub fn writer(&self) -> Result<Named<File>> {
        Ok(Named {
            inner: self.file.try_clone()?,
            name: self.shown.clone(),
        })
    }

    /// Puts the file at its destination (once; writes through open handles
    /// go on to it there). A file written through is there already.
    pub fn commit(&mut self) -> Result<()> {
        if !self.done
            && let Some((temporary, destination)) = &self.rename
        {
            std::fs::rename(temporary, destination)
                .with_context(|| format!("cannot write {}", self.shown))?;
            self.done = true;
        }
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.done
            && let Some((temporary, _)) = &self.rename
        {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

/// A writer whose errors say what they were writing (`writing out.pftrace:
/// No space left on device (os error 28)`), keeping their kind.
#[derive(Debug)]
pub struct Named<W> {
    inner: W,
    name: String,
}

impl<W: Write> Named<W> {
    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("writing {}: {e}", self.name))
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.named(e))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.named(e))
    }
}

/// `path` with symbolic links followed to what they finally name (which
/// may not exist yet).
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// A new file `.NAME.PID.tmp` beside `destination`.
fn beside(destination: &Path) -> io::Result<(PathBuf, File)> {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let temporary = destination.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)?;
    Ok((temporary, file))
}

/// Whether two paths name the same existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pytap-replace-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_destination_changes_only_when_committed() {
        let dir = dir("commit");
        let dest = dir.join("out.txt");
        std::fs::write(&dest, "before").unwrap();
        {
            let r = OutputFile::create(&dest).unwrap();
            r.writer().unwrap().write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "before");
        let mut r = OutputFile::create(&dest).unwrap();
        let mut w = r.writer().unwrap();
        w.write_all(b"new").unwrap();
        r.commit().unwrap();
        // Still open: writes go on at the destination.
        w.write_all(b" and more").unwrap();
        drop(r);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new and more");
        assert!(same_file(&dest, &dest) && !same_file(&dest, &dir));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_are_followed_and_what_is_not_a_file_is_written_through() {
        let dir = dir("kinds");
        // A link to a file: the file is replaced, the link stays.
        let real = dir.join("real.txt");
        std::fs::write(&real, "old").unwrap();
        let link = dir.join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        let mut r = OutputFile::create(&link).unwrap();
        r.writer().unwrap().write_all(b"new").unwrap();
        r.commit().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        // A dangling link: its target is created.
        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink("made.txt", &dangling).unwrap();
        let mut r = OutputFile::create(&dangling).unwrap();
        r.writer().unwrap().write_all(b"made").unwrap();
        r.commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("made.txt")).unwrap(),
            "made"
        );
        // /dev/null stays the device; /dev/full's error names it.
        let mut r = OutputFile::create(Path::new("/dev/null")).unwrap();
        r.writer().unwrap().write_all(b"x").unwrap();
        r.commit().unwrap();
        assert!(
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let r = OutputFile::create(Path::new("/dev/full")).unwrap();
        let e = r.writer().unwrap().write_all(b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            e.to_string(),
            "writing /dev/full: No space left on device (os error 28)"
        );
        // A directory is refused; nothing is left beside anything.
        let e = OutputFile::create(&dir).unwrap_err();
        assert!(format!("{e:#}").ends_with("it is a directory"), "{e:#}");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dangling", "link.txt", "made.txt", "real.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
