//! Native frames of a process, named from the files it maps: each address
//! placed in its mapping (`/proc/PID/maps`), turned into the file's
//! virtual address through the loaded segment that holds it, and named by
//! the function symbol that covers it (`.symtab`, else a stripped file's
//! `.dynsym`); an address no symbol covers is shown as its file and
//! offset, never as the nearest symbol before it. Also whether an
//! interpreter was built with frame pointers, without which the kernel
//! cannot unwind its native stack.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use pytap_elf::{ElfImage, FunctionSymbol, LoadSegment};

use super::module::{FileRef, Module};
use super::proc::{Mapping, parse_maps};

/// A native frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NativeFrame {
    /// The function, when a symbol covers the address.
    pub function: Option<Arc<str>>,
    /// The file's path as the process sees it.
    pub file: Arc<str>,
    /// The address in the file's virtual addresses.
    pub address: u64,
}

impl NativeFrame {
    /// How the frame is shown: the function, or `file+0xaddress`.
    pub fn label(&self) -> String {
        match &self.function {
            Some(f) => f.to_string(),
            None => {
                let base = self.file.rsplit('/').next().unwrap_or(&self.file);
                format!("{base}+{:#x}", self.address)
            }
        }
    }
}

/// A mapped file's symbols.
#[derive(Debug)]
struct FileSymbols {
    path: Arc<str>,
    loads: Vec<LoadSegment>,
    functions: Vec<FunctionSymbol>,
    /// Names handed out, one `Arc` per function.
    names: HashMap<u64, Arc<str>>,
}

impl FileSymbols {
    fn open(pid: u32, m: &Mapping) -> Option<FileSymbols> {
        // Through map_files: the very file mapped, in a container or deleted.
        let file = File::open(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)).ok()?;
        let len = file.metadata().ok()?.len();
        let reader = FileRef::new(file, len);
        let image = ElfImage::parse(&reader).ok()?;
        Some(FileSymbols {
            path: Arc::from(m.path.as_deref().unwrap_or("?")),
            loads: image.load_segments().to_vec(),
            functions: image.function_symbols(),
            names: HashMap::new(),
        })
    }

    /// The frame at file offset `offset`.
    fn frame(&mut self, offset: u64) -> NativeFrame {
        let address = self
            .loads
            .iter()
            .find(|s| offset >= s.offset && offset - s.offset < s.filesz)
            .map_or(offset, |s| s.vaddr + (offset - s.offset));
        let at = self.functions.partition_point(|f| f.address <= address);
        let function = at
            .checked_sub(1)
            .map(|i| &self.functions[i])
            .filter(|f| address - f.address < f.size)
            .map(|f| {
                self.names
                    .entry(f.address)
                    .or_insert_with(|| Arc::from(f.name.as_str()))
                    .clone()
            });
        NativeFrame {
            function,
            file: self.path.clone(),
            address,
        }
    }
}

/// Names a process's native addresses, its files' symbols read once.
#[derive(Debug)]
pub struct NativeSymbols {
    pid: u32,
    maps: Vec<Mapping>,
    files: HashMap<(String, u64), Option<FileSymbols>>,
}

impl NativeSymbols {
    /// The symbols of process `pid`.
    pub fn new(pid: u32) -> NativeSymbols {
        let mut s = NativeSymbols {
            pid,
            maps: Vec::new(),
            files: HashMap::new(),
        };
        s.reread_maps();
        s
    }

    fn reread_maps(&mut self) {
        self.maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid))
            .map(|t| parse_maps(&t))
            .unwrap_or_default();
    }

    fn mapping(&self, address: u64) -> Option<&Mapping> {
        self.maps
            .iter()
            .find(|m| m.executable && m.is_file() && address >= m.start && address < m.end)
    }

    /// Names a native stack, innermost first: the first address is where
    /// the thread was, the others return addresses (named by the call
    /// before them). The stack ends at the first address in no mapped
    /// file's code (where a frame-pointer walk left the frames).
    pub fn name(&mut self, stack: &[u64]) -> Vec<NativeFrame> {
        let mut out = Vec::with_capacity(stack.len());
        for (i, &ip) in stack.iter().enumerate() {
            let ip = if i == 0 { ip } else { ip.wrapping_sub(1) };
            if self.mapping(ip).is_none() {
                // A library loaded since: once.
                self.reread_maps();
            }
            let Some(m) = self.mapping(ip) else {
                break;
            };
            let offset = ip - m.start + m.offset;
            let key = (m.dev.clone(), m.inode);
            let m = m.clone();
            let pid = self.pid;
            let file = self
                .files
                .entry(key)
                .or_insert_with(|| FileSymbols::open(pid, &m));
            match file {
                Some(file) => out.push(file.frame(offset)),
                None => out.push(NativeFrame {
                    function: None,
                    file: Arc::from(m.path.as_deref().unwrap_or("?")),
                    address: offset,
                }),
            }
        }
        out
    }
}

/// Functions whose prologue says whether a build keeps frame pointers:
/// the eval loop and two hot entry points every version exports.
const PROLOGUE_PROBES: [&str; 3] = [
    "_PyEval_EvalFrameDefault",
    "PyObject_Vectorcall",
    "PyNumber_Add",
];

/// Whether the interpreter's file was built with frame pointers: each of
/// [`PROLOGUE_PROBES`] it defines starts (after an `endbr64`) with
/// `push %rbp; mov %rsp,%rbp`, as every function does under
/// `-fno-omit-frame-pointer`.
pub fn has_frame_pointers(module: &Module) -> bool {
    let Ok(file) = File::open(&module.open_path) else {
        return false;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let reader = FileRef::new(file, len);
    let Ok(image) = ElfImage::parse(&reader) else {
        return false;
    };
    let mut seen = 0;
    for name in PROLOGUE_PROBES {
        let Some(sym) = image.dynamic_symbol(name) else {
            continue;
        };
        let Some(code) = image.read_at_vaddr(sym.address, 8) else {
            return false;
        };
        if !keeps_frame_pointer(code) {
            return false;
        }
        seen += 1;
    }
    seen > 0
}

/// `[endbr64] push %rbp; mov %rsp,%rbp`.
fn keeps_frame_pointer(code: &[u8]) -> bool {
    let code = code.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa]).unwrap_or(code);
    code.starts_with(&[0x55, 0x48, 0x89, 0xe5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prologues_that_keep_the_frame_pointer() {
        assert!(keeps_frame_pointer(&[0x55, 0x48, 0x89, 0xe5, 0x41]));
        assert!(keeps_frame_pointer(&[
            0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5
        ]));
        // push %r14 first; push %rbp then mov %rsi,%rbp (rbp a register).
        assert!(!keeps_frame_pointer(&[0x41, 0x56, 0x41, 0x55]));
        assert!(!keeps_frame_pointer(&[0x55, 0x48, 0x89, 0xf5]));
        assert!(!keeps_frame_pointer(&[]));
    }

    #[test]
    fn an_address_no_symbol_covers_is_its_file_and_offset() {
        let mut f = FileSymbols {
            path: Arc::from("/usr/lib/libx.so.1"),
            loads: vec![LoadSegment {
                vaddr: 0x1000,
                memsz: 0x1000,
                offset: 0x0,
                filesz: 0x1000,
                executable: true,
                writable: false,
            }],
            functions: vec![FunctionSymbol {
                address: 0x1100,
                size: 0x10,
                name: "f".into(),
            }],
            names: HashMap::new(),
        };
        assert_eq!(f.frame(0x105).function.as_deref(), Some("f"));
        let past = f.frame(0x120);
        assert_eq!(past.function, None);
        assert_eq!(past.label(), "libx.so.1+0x1120");
        assert_eq!(f.frame(0x0ff).function, None);
    }
}
