//! A file written beside its destination and renamed over it once it is
//! good: a failed run (a mistyped target, a damaged input) leaves whatever
//! was at the destination before, never an empty or half-written file.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// An output file being written under a temporary name.
#[derive(Debug)]
pub struct Replacement {
    temporary: PathBuf,
    destination: PathBuf,
    file: File,
    done: bool,
}

impl Replacement {
    /// Creates `.NAME.PID.tmp` beside `destination`.
    pub fn create(destination: &Path) -> Result<Replacement> {
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let temporary = destination.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&temporary).with_context(|| destination.display().to_string())?;
        Ok(Replacement {
            temporary,
            destination: destination.to_path_buf(),
            file,
            done: false,
        })
    }

    /// A handle to write through (the same open file).
    pub fn writer(&self) -> Result<File> {
        Ok(self.file.try_clone()?)
    }

    /// Puts the file at its destination (once; writes through open handles
    /// go on to it there).
    pub fn commit(&mut self) -> Result<()> {
        if !self.done {
            std::fs::rename(&self.temporary, &self.destination)
                .with_context(|| self.destination.display().to_string())?;
            self.done = true;
        }
        Ok(())
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
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
    use std::io::Write;

    #[test]
    fn the_destination_changes_only_when_committed() {
        let dir = std::env::temp_dir().join(format!("pytap-replace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.txt");
        std::fs::write(&dest, "before").unwrap();
        {
            let r = Replacement::create(&dest).unwrap();
            r.writer().unwrap().write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "before");
        let mut r = Replacement::create(&dest).unwrap();
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
}
