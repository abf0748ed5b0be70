//! Reading an ELF file in a few large reads.
//!
//! The ELF parser asks for many small pieces: headers, a section table,
//! each symbol's name, a few bytes of code. Read one by one (a seek and a
//! read each, strings 256 bytes at a time) that was thousands of system
//! calls per file and most of pytap's start-up. [`FileRef`] reads the file
//! in aligned [`BLOCK`]-sized blocks, each once, and a request that crosses
//! blocks with one `pread` of exactly its range; everything read stays
//! until the reader is dropped (after the facts are taken), so the
//! parser's borrowed slices stay valid.
//!
//! `pread` rather than `mmap`: a file truncated or rewritten while pytap
//! reads it gives a short read (an error), never a `SIGBUS`.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use elsa::FrozenMap;
use object::ReadRef;

/// Size of the blocks the file is read in.
pub const BLOCK: u64 = 64 * 1024;

/// Longest string searched for its delimiter (names in ELF string tables
/// are far shorter).
const MAX_STRING: u64 = 4096;

/// A file read on demand, block by block (see the module docs).
pub struct FileRef {
    file: File,
    len: u64,
    blocks: FrozenMap<u64, Box<[u8]>>,
    ranges: FrozenMap<(u64, u64), Box<[u8]>>,
}

impl std::fmt::Debug for FileRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRef")
            .field("file", &self.file)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FileRef {
    /// Reads `file` (of `len` bytes) on demand.
    pub fn new(file: File, len: u64) -> FileRef {
        FileRef {
            file,
            len,
            blocks: FrozenMap::new(),
            ranges: FrozenMap::new(),
        }
    }

    /// The file, once reading is over.
    pub fn into_file(self) -> File {
        self.file
    }

    fn read_exact(&self, offset: u64, size: u64) -> Result<Box<[u8]>, ()> {
        let size = usize::try_from(size).map_err(|_| ())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(size).map_err(|_| ())?;
        buf.resize(size, 0);
        self.file.read_exact_at(&mut buf, offset).map_err(|_| ())?;
        Ok(buf.into_boxed_slice())
    }

    /// Block `index`, read once.
    fn block(&self, index: u64) -> Result<&[u8], ()> {
        if let Some(b) = self.blocks.get(&index) {
            return Ok(b);
        }
        let start = index * BLOCK;
        let size = BLOCK.min(self.len.saturating_sub(start));
        let bytes = self.read_exact(start, size)?;
        Ok(self.blocks.insert(index, bytes))
    }

    /// Exactly `offset..offset + size`, read once.
    fn range(&self, offset: u64, size: u64) -> Result<&[u8], ()> {
        if let Some(r) = self.ranges.get(&(offset, size)) {
            return Ok(r);
        }
        let bytes = self.read_exact(offset, size)?;
        Ok(self.ranges.insert((offset, size), bytes))
    }
}

impl<'a> ReadRef<'a> for &'a FileRef {
    fn len(self) -> Result<u64, ()> {
        Ok(self.len)
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        if size == 0 {
            return Ok(&[]);
        }
        let end = offset.checked_add(size).ok_or(())?;
        if end > self.len {
            return Err(());
        }
        let first = offset / BLOCK;
        if first == (end - 1) / BLOCK {
            let block = self.block(first)?;
            let at = usize::try_from(offset - first * BLOCK).map_err(|_| ())?;
            return block.get(at..at + size as usize).ok_or(());
        }
        self.range(offset, size)
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        let end = range.end.min(self.len);
        if range.start >= end {
            return Err(());
        }
        // Within the block the string starts in, most of the time.
        let index = range.start / BLOCK;
        let block = self.block(index)?;
        let at = usize::try_from(range.start - index * BLOCK).map_err(|_| ())?;
        let in_block = usize::try_from((end - index * BLOCK).min(BLOCK)).map_err(|_| ())?;
        let head = block.get(at..in_block.min(block.len())).ok_or(())?;
        if let Some(n) = head.iter().position(|&b| b == delimiter) {
            return Ok(&head[..n]);
        }
        // It crosses into the next block: one read of the longest it may be.
        let size = (end - range.start).min(MAX_STRING);
        let bytes = self.range(range.start, size)?;
        let n = bytes.iter().position(|&b| b == delimiter).ok_or(())?;
        Ok(&bytes[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> FileRef {
        let path = std::env::temp_dir().join(format!(
            "pytap-fileref-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        FileRef::new(file, bytes.len() as u64)
    }

    #[test]
    fn reads_within_and_across_blocks_and_strings() {
        let mut bytes: Vec<u8> = (0..3 * BLOCK as usize).map(|i| (i % 251) as u8).collect();
        let b = BLOCK as usize;
        bytes[b - 6..b - 3].copy_from_slice(b"xy\0");
        bytes[b - 2..b + 3].copy_from_slice(b"abcd\0");
        bytes[10..14].copy_from_slice(b"xyz\0");
        let f = file_with(&bytes);
        let r = &f;
        assert_eq!(r.read_bytes_at(5, 4).unwrap(), &bytes[5..9]);
        // Across a block boundary: one exact read.
        assert_eq!(r.read_bytes_at(BLOCK - 2, 4).unwrap(), &bytes[b - 2..b + 2]);
        assert_eq!(r.read_bytes_at(0, 3 * BLOCK).unwrap(), &bytes[..]);
        assert!(r.read_bytes_at(3 * BLOCK - 1, 2).is_err());
        assert!(r.read_bytes_at(u64::MAX, 2).is_err());
        assert_eq!(r.read_bytes_at_until(10..100, 0).unwrap(), b"xyz");
        assert_eq!(
            r.read_bytes_at_until(BLOCK - 6..BLOCK + 100, 0).unwrap(),
            b"xy"
        );
        // A string that crosses the boundary.
        assert_eq!(
            r.read_bytes_at_until(BLOCK - 2..BLOCK + 100, 0).unwrap(),
            b"abcd"
        );
        assert_eq!(r.read_bytes_at_until(BLOCK..BLOCK + 100, 0).unwrap(), b"cd");
        // No delimiter within the range.
        assert!(r.read_bytes_at_until(11..12, 0).is_err());
        // Blocks are read once: the same slice comes back.
        let a = r.read_bytes_at(5, 4).unwrap().as_ptr();
        assert_eq!(r.read_bytes_at(5, 4).unwrap().as_ptr(), a);
    }
}
