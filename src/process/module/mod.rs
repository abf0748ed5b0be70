//! A file that carries CPython's markers: an interpreter executable or a
//! `libpython*.so`, as pytap attaches to it.
//!
//! [`Module::open`] reads only what it needs (headers, notes, dynamic
//! section, a few symbols) through a [`FileRef`], which reads the file in a
//! few large blocks; it keeps owned copies of the facts, and keeps the file
//! open so that strings the kernel could not read from the target (a page
//! not yet resident) can be recovered from the file later.

mod file;

pub use file::FileRef;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pytap_elf::{DynamicInfo, ElfImage, ElfKind, LoadSegment, ProbeSite, X86Reg};

use crate::cpython::frames::{self, FrameLayout, FrameSource};
use crate::cpython::marker::{Marker, PROVIDER};
use crate::cpython::version::{self, PyVersion, VersionSource};
use crate::error::TargetError;
use crate::process::proc::Process;

/// Functions CPython calls only on a fatal error, in order of preference.
const ANCHOR_SYMBOLS: [&str; 2] = ["Py_FatalError", "_Py_FatalErrorFunc"];

/// An ELF file with the facts pytap needs, opened once.
#[derive(Debug, Clone)]
pub struct Module {
    /// The path as the user or the traced process names it.
    pub path: PathBuf,
    /// A path on this host that opens the same inode: what pytap reads and
    /// what uprobes are attached to (`/proc/PID/root/...` for containers).
    pub open_path: PathBuf,
    /// `ET_EXEC` or `ET_DYN`.
    pub kind: ElfKind,
    /// An executable (has a program interpreter) rather than a library.
    pub is_executable: bool,
    /// The `PT_LOAD` segments.
    pub loads: Vec<LoadSegment>,
    /// Every stapsdt site of every provider, in note order.
    pub all_sites: Vec<ProbeSite>,
    /// The dynamic section.
    pub dynamic: DynamicInfo,
    /// The CPython version and where it was read from, if it is a CPython.
    pub version: Option<(PyVersion, VersionSource)>,
    /// Whether the file exports the CPython C API (`Py_Initialize`), markers or not.
    pub exports_python_api: bool,
    /// GNU build ID.
    pub build_id: Option<String>,
    /// `st_dev` and `st_ino` of the file: uprobes are per inode.
    pub dev: u64,
    /// Inode number.
    pub inode: u64,
    /// The entry point (`e_entry`).
    pub entry: u64,
    /// A function that runs only when the interpreter dies, and its file
    /// offset: where pytap can hang a uprobe that raises a semaphore
    /// without ever trapping in normal operation (see `engine::plan`).
    pub anchor: Option<(&'static str, u64)>,
    /// The register holding the `_PyInterpreterFrame *` at every
    /// `function__entry` site, when the machine code shows it (3.15+, see
    /// [`Module::entry_frame`]).
    pub frame_register: Option<X86Reg>,
    file: Arc<File>,
}

impl Module {
    /// The address of a section (`.PyRuntime`), read from the file.
    pub fn section_address(&self, name: &str) -> Option<u64> {
        let file = File::open(&self.open_path).ok()?;
        let len = file.metadata().ok()?.len();
        let reader = FileRef::new(file, len);
        let image = ElfImage::parse(&reader).ok()?;
        image.section(name).map(|(address, _)| address)
    }

    /// The addresses (in the file's virtual addresses) of the defined
    /// dynamic symbols `names`, read in one pass; `None` for each missing.
    pub fn dynamic_symbols(&self, names: &[&str]) -> Vec<Option<u64>> {
        let Ok(file) = self.file.try_clone() else {
            return vec![None; names.len()];
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return vec![None; names.len()];
        };
        let reader = FileRef::new(file, len);
        let Ok(image) = ElfImage::parse(&reader) else {
            return vec![None; names.len()];
        };
        names
            .iter()
            .map(|n| image.dynamic_symbol(n).map(|s| s.address))
            .collect()
    }

    /// Where the module's virtual address `vaddr` is in `process`, which
    /// maps the module: through the loaded segment that holds it and the
    /// mapping of that segment's file offset.
    pub fn address_in(&self, process: &Process, vaddr: u64) -> Option<u64> {
        let seg = self
            .loads
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr < s.vaddr + s.memsz)?;
        let offset = seg.offset + (vaddr - seg.vaddr);
        let dev = &process
            .maps
            .iter()
            .find(|m| m.inode == self.inode && m.path.is_some())?
            .dev;
        if vaddr - seg.vaddr >= seg.filesz {
            // .bss: past the file's bytes, in the anonymous mapping that
            // follows the segment's last file page.
            let last_file_byte = seg.offset + seg.filesz.max(1) - 1;
            let base = process.address_of_file_offset(dev, self.inode, last_file_byte)?
                - (seg.vaddr + seg.filesz.max(1) - 1);
            return Some(base + vaddr);
        }
        process.address_of_file_offset(dev, self.inode, offset)
    }

    /// The first `len` bytes of a section's contents in the file.
    pub fn section_bytes(&self, name: &str, len: usize) -> Option<Vec<u8>> {
        let file = File::open(&self.open_path).ok()?;
        let size = file.metadata().ok()?.len();
        let reader = FileRef::new(file, size);
        let image = ElfImage::parse(&reader).ok()?;
        let (_, bytes) = image.section(name)?;
        bytes.get(..len).map(<[u8]>::to_vec)
    }

    /// The C function containing each of the module's sites (in
    /// `all_sites` order), from its symbols; `None` where none covers it.
    pub fn site_functions(&self) -> Result<Vec<Option<String>>, TargetError> {
        let file = File::open(&self.open_path).map_err(|e| TargetError::io(&self.path, e))?;
        let len = file
            .metadata()
            .map_err(|e| TargetError::io(&self.path, e))?
            .len();
        let reader = FileRef::new(file, len);
        let image = ElfImage::parse(&reader).map_err(|source| TargetError::BadElf {
            path: self.path.clone(),
            source,
        })?;
        let pcs: Vec<u64> = self.all_sites.iter().map(|s| s.pc).collect();
        Ok(image.functions_containing(&pcs))
    }

    /// Opens and reads an ELF file. `path` is the name to show, `open_path`
    /// the host path to read (they differ for files seen through `/proc`).
    pub fn open(
        path: impl Into<PathBuf>,
        open_path: impl Into<PathBuf>,
    ) -> Result<Module, TargetError> {
        let path = path.into();
        let open_path = open_path.into();
        let file = File::open(&open_path).map_err(|e| TargetError::io(&path, e))?;
        let meta = file.metadata().map_err(|e| TargetError::io(&path, e))?;
        if !meta.is_file() {
            return Err(TargetError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        let bad = |source| TargetError::BadElf {
            path: path.clone(),
            source,
        };
        let reader = FileRef::new(file, meta.len());
        let facts = {
            let image = ElfImage::parse(&reader).map_err(bad)?;
            Facts::read(&image, &path).map_err(bad)?
        };
        Ok(Module {
            path,
            open_path,
            kind: facts.kind,
            is_executable: facts.is_executable,
            loads: facts.loads,
            all_sites: facts.all_sites,
            dynamic: facts.dynamic,
            version: facts.version,
            exports_python_api: facts.exports_python_api,
            build_id: facts.build_id,
            dev: meta.dev(),
            inode: meta.ino(),
            entry: facts.entry,
            anchor: facts.anchor,
            frame_register: facts.frame_register,
            file: Arc::new(reader.into_file()),
        })
    }

    /// The `python` provider's sites, in note order.
    pub fn python_sites(&self) -> impl Iterator<Item = &ProbeSite> {
        self.all_sites.iter().filter(|s| s.provider == PROVIDER)
    }

    /// Whether the file carries any `python` marker.
    pub fn has_python_markers(&self) -> bool {
        self.python_sites().next().is_some()
    }

    /// The sites of one marker.
    pub fn sites_of(&self, marker: Marker) -> Vec<&ProbeSite> {
        self.python_sites()
            .filter(|s| s.name == marker.name())
            .collect()
    }

    /// How many sites each known marker has.
    pub fn site_counts(&self) -> BTreeMap<Marker, usize> {
        let mut counts = BTreeMap::new();
        for site in self.python_sites() {
            if let Some(m) = Marker::from_note_name(&site.name) {
                *counts.entry(m).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The CPython version, if known.
    pub fn py_version(&self) -> Option<PyVersion> {
        self.version.map(|(v, _)| v)
    }

    /// Versions whose `function__entry` also fires at generator creation
    /// (3.15+): where the frame is at that marker, or `Some(None)` when
    /// this build does not show it. `None` for other versions.
    pub fn entry_frame(&self) -> Option<Option<FrameSource>> {
        let layout = self.py_version().and_then(FrameLayout::for_version)?;
        Some(
            self.frame_register
                .map(|register| FrameSource { register, layout }),
        )
    }

    /// Reads a NUL-terminated string at a link-time virtual address from the
    /// file (at most `max` bytes). For an `ET_DYN` file the caller converts
    /// the runtime address first.
    pub fn read_cstr(&self, vaddr: u64, max: usize) -> Option<Vec<u8>> {
        let seg = self
            .loads
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)?;
        let offset = seg.offset + (vaddr - seg.vaddr);
        let available = (seg.filesz - (vaddr - seg.vaddr)).min(max as u64) as usize;
        self.read_cstr_at_offset(offset, available)
    }

    /// Reads a NUL-terminated string at a file offset (at most `max` bytes).
    pub fn read_cstr_at_offset(&self, offset: u64, max: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; max];
        let n = self.file.read_at(&mut buf, offset).ok()?;
        buf.truncate(n);
        let end = buf.iter().position(|&b| b == 0)?;
        buf.truncate(end);
        Some(buf)
    }

    /// `executable` or `library`, for messages and JSON.
    pub fn role(&self) -> &'static str {
        if self.is_executable {
            "executable"
        } else {
            "library"
        }
    }

    /// The base name of the path.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `" 3.11.2"` or `""`, for messages.
    pub fn version_suffix(&self) -> String {
        match self.version {
            Some((v, VersionSource::FileName)) => format!(" {}.{}", v.major, v.minor),
            Some((v, _)) => format!(" {v}"),
            None => String::new(),
        }
    }
}

/// What [`Module::open`] reads from the image while the file is borrowed.
struct Facts {
    kind: ElfKind,
    is_executable: bool,
    loads: Vec<LoadSegment>,
    all_sites: Vec<ProbeSite>,
    dynamic: DynamicInfo,
    version: Option<(PyVersion, VersionSource)>,
    exports_python_api: bool,
    build_id: Option<String>,
    entry: u64,
    anchor: Option<(&'static str, u64)>,
    frame_register: Option<X86Reg>,
}

impl Facts {
    fn read<'data, R: object::ReadRef<'data>>(
        image: &ElfImage<'data, R>,
        path: &Path,
    ) -> Result<Facts, pytap_elf::ElfError> {
        let all_sites = image.probe_sites()?;
        let dynamic = image.dynamic_info()?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exports_python_api = image.dynamic_symbol("Py_Initialize").is_some();
        let looks_like_python =
            exports_python_api || all_sites.iter().any(|s| s.provider == PROVIDER);
        let version = looks_like_python
            .then(|| version::detect(image, &file_name))
            .flatten();
        let anchor = ANCHOR_SYMBOLS.iter().find_map(|name| {
            let sym = image.dynamic_symbol(name)?;
            Some((*name, image.file_offset(sym.address, Some(true))?))
        });
        let frame_register = version
            .and_then(|(v, _)| FrameLayout::for_version(v))
            .and_then(|_| entry_frame_register(image, &all_sites));
        Ok(Facts {
            kind: image.kind(),
            is_executable: image.interpreter().is_some() || image.kind() == ElfKind::Executable,
            loads: image.load_segments().to_vec(),
            all_sites,
            dynamic,
            version,
            exports_python_api,
            build_id: image.build_id(),
            entry: image.entry(),
            anchor,
            frame_register,
        })
    }
}

/// The register every `function__entry` site keeps the frame in, if they
/// all show one and agree.
fn entry_frame_register<'data, R: object::ReadRef<'data>>(
    image: &ElfImage<'data, R>,
    sites: &[ProbeSite],
) -> Option<X86Reg> {
    const BEFORE: u64 = 24;
    let get_line = image.dynamic_symbol(frames::GET_LINE_SYMBOL)?.address;
    let mut found = None;
    for site in sites
        .iter()
        .filter(|s| s.provider == PROVIDER && s.name == Marker::FunctionEntry.name())
    {
        let start = site.address.checked_sub(BEFORE)?;
        let code = image.read_at_vaddr(start, BEFORE)?;
        let reg = frames::frame_register(code, site.address, get_line)?;
        if found.is_some_and(|r| r != reg) {
            return None;
        }
        found = Some(reg);
    }
    found
}

/// Whether two modules are the same file (uprobes are per inode).
pub fn same_file(a: &Module, b: &Module) -> bool {
    a.dev == b.dev && a.inode == b.inode
}

/// Convenience for messages.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}
