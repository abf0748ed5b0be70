//! An executable or shared library as a uprobe sees it.
//!
//! A uprobe is placed at a *file offset* of an inode, and a USDT semaphore is
//! named by its file offset too (`ref_ctr_offset`). The notes give virtual
//! addresses, so every address goes through the program headers of the very
//! file being attached to: Debian's non-PIE `python3.X` (`ET_EXEC`, loaded at
//! 0x400000), `libpython3.X.so` (`ET_DYN`, whose data segment's vaddr and
//! offset differ by a page) and binaries rewritten by patchelf (every file
//! offset shifted, vaddrs untouched) all come out right only this way.
//!
//! [`ElfImage`] reads through any [`ReadRef`], so a caller can parse a file
//! lazily (an [`object::ReadCache`] reads only the headers and sections
//! asked for) or from bytes in memory (tests, the fuzzer).

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, SectionTable, Sym};
use object::{LittleEndian, ReadRef};
use thiserror::Error;

use crate::argspec::{ArgSpec, ArgSpecError, parse_arg_specs};
use crate::note::{NoteError, parse_stapsdt_notes};

type Header = elf::FileHeader64<LittleEndian>;
const LE: LittleEndian = LittleEndian;

/// Why a file could not be read as an x86-64 ELF executable or library.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ElfError {
    /// The file does not start with `\x7fELF`.
    #[error("not an ELF file")]
    NotElf,
    /// Shorter than an ELF header.
    #[error("truncated ELF file")]
    Truncated,
    /// A 32-bit ELF file.
    #[error("32-bit ELF files are not supported (pytap traces x86-64 processes)")]
    Elf32,
    /// A big-endian ELF file.
    #[error("big-endian ELF files are not supported (pytap traces x86-64 processes)")]
    BigEndian,
    /// Built for another architecture.
    #[error("ELF machine {0} is not x86-64")]
    Machine(u16),
    /// Neither an executable nor a shared object (a `.o`, a core dump, ...).
    #[error("ELF type {0} is not an executable or shared library")]
    FileType(u16),
    /// The headers are inconsistent; the text says which part.
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// `.note.stapsdt` is present but broken.
    #[error("malformed .note.stapsdt: {0}")]
    Notes(#[from] NoteError),
}

impl From<object::read::Error> for ElfError {
    fn from(e: object::read::Error) -> Self {
        ElfError::Malformed(e.to_string())
    }
}

/// `e_type` of the file, which decides how addresses relate to the load address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: loaded at its link-time addresses (non-PIE executables).
    Executable,
    /// `ET_DYN`: position independent (shared libraries and PIE executables).
    SharedObject,
}

impl ElfKind {
    /// `readelf` spelling: `EXEC` or `DYN`.
    pub fn as_str(self) -> &'static str {
        match self {
            ElfKind::Executable => "EXEC",
            ElfKind::SharedObject => "DYN",
        }
    }
}

/// One `PT_LOAD` program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Virtual address of the segment.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// Offset of the segment's first byte in the file.
    pub offset: u64,
    /// Size in the file (bytes past it are zero-filled, e.g. `.bss`).
    pub filesz: u64,
    /// `PF_X`.
    pub executable: bool,
    /// `PF_W`.
    pub writable: bool,
}

impl LoadSegment {
    fn contains(&self, vaddr: u64) -> bool {
        vaddr >= self.vaddr && vaddr - self.vaddr < self.memsz
    }
}

/// A USDT semaphore: the 16-bit counter a tracer raises to enable a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Semaphore {
    /// Address as written in the note.
    pub note_address: u64,
    /// Address after the prelink adjustment (equal to `note_address` unless prelinked).
    pub address: u64,
    /// File offset, the `ref_ctr_offset` the kernel wants; `None` when no
    /// non-executable `PT_LOAD` holds the address (a malformed note).
    pub file_offset: Option<u64>,
}

/// One marker site, resolved against the file's program headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSite {
    /// Provider, e.g. `python`.
    pub provider: String,
    /// Marker name, e.g. `function__entry`.
    pub name: String,
    /// Probe address as written in the note (what `readelf -n` prints as Location).
    pub pc: u64,
    /// `.stapsdt.base` address written in the note (readelf's Base).
    pub base: u64,
    /// Probe address after the prelink adjustment.
    pub address: u64,
    /// File offset of the probe instruction (the uprobe offset); `None` when
    /// no executable `PT_LOAD` holds the address.
    pub file_offset: Option<u64>,
    /// The site's semaphore, if it has one.
    pub semaphore: Option<Semaphore>,
    /// Argument spec string as written (`8@%rbp 8@%r12 -4@%eax`).
    pub args: String,
    /// The parsed arguments, or why they could not be parsed. A site whose
    /// arguments do not parse can still be listed, just not traced.
    pub arg_specs: Result<Vec<ArgSpec>, ArgSpecError>,
}

/// What the dynamic section says about linking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicInfo {
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` (searched before `LD_LIBRARY_PATH`, only when there is no RUNPATH).
    pub rpath: Option<String>,
    /// `DT_RUNPATH`.
    pub runpath: Option<String>,
}

/// A dynamic symbol's value and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    /// `st_value`: a virtual address for defined symbols.
    pub address: u64,
    /// `st_size`.
    pub size: u64,
}

/// A function symbol: where it starts, its size and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// `st_value`.
    pub address: u64,
    /// `st_size` (never 0).
    pub size: u64,
    /// The symbol's name.
    pub name: String,
}

/// An x86-64 little-endian ELF executable or shared library.
#[derive(Debug)]
pub struct ElfImage<'data, R: ReadRef<'data> = &'data [u8]> {
    data: R,
    header: &'data Header,
    kind: ElfKind,
    loads: Vec<LoadSegment>,
    interpreter: Option<String>,
    sections: SectionTable<'data, Header, R>,
}

impl<'data, R: ReadRef<'data>> ElfImage<'data, R> {
    /// Reads the ELF header, program headers and section headers.
    pub fn parse(data: R) -> Result<Self, ElfError> {
        let ident = data.read_bytes_at(0, 16).map_err(|()| {
            // Shorter than an identification block: tell garbage from a cut-off ELF.
            match data.read_bytes_at(0, 4) {
                Ok(magic) if magic == elf::ELFMAG => ElfError::Truncated,
                _ => ElfError::NotElf,
            }
        })?;
        if ident[..4] != elf::ELFMAG {
            return Err(ElfError::NotElf);
        }
        match elf::FileClass(ident[4]) {
            elf::ELFCLASS64 => {}
            elf::ELFCLASS32 => return Err(ElfError::Elf32),
            _ => return Err(ElfError::Malformed("unknown ELF class".into())),
        }
        match elf::DataEncoding(ident[5]) {
            elf::ELFDATA2LSB => {}
            elf::ELFDATA2MSB => return Err(ElfError::BigEndian),
            _ => return Err(ElfError::Malformed("unknown ELF data encoding".into())),
        }
        let header = Header::parse(data).map_err(|_| ElfError::Truncated)?;
        let machine = header.e_machine(LE);
        if machine != elf::EM_X86_64 {
            return Err(ElfError::Machine(machine.0));
        }
        let kind = match header.e_type(LE) {
            elf::ET_EXEC => ElfKind::Executable,
            elf::ET_DYN => ElfKind::SharedObject,
            other => return Err(ElfError::FileType(other.0)),
        };
        let program_headers = header.program_headers(LE, data)?;
        let interpreter = program_headers
            .iter()
            .find(|ph| ph.p_type(LE) == elf::PT_INTERP)
            .and_then(|ph| ph.data(LE, data).ok())
            .map(|bytes| {
                String::from_utf8_lossy(bytes.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
            });
        let loads = program_headers
            .iter()
            .filter(|ph| ph.p_type(LE) == elf::PT_LOAD)
            .map(|ph| LoadSegment {
                vaddr: ph.p_vaddr(LE),
                memsz: ph.p_memsz(LE),
                offset: ph.p_offset(LE),
                filesz: ph.p_filesz(LE),
                executable: ph.p_flags(LE).0 & elf::PF_X.0 != 0,
                writable: ph.p_flags(LE).0 & elf::PF_W.0 != 0,
            })
            .collect();
        let sections = header.sections(LE, data)?;
        Ok(ElfImage {
            data,
            header,
            kind,
            loads,
            interpreter,
            sections,
        })
    }

    /// `ET_EXEC` or `ET_DYN`.
    pub fn kind(&self) -> ElfKind {
        self.kind
    }

    /// The program interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`):
    /// present in executables, absent in shared libraries.
    pub fn interpreter(&self) -> Option<&str> {
        self.interpreter.as_deref()
    }

    /// The entry point address (`e_entry`; 0 for most shared libraries).
    pub fn entry(&self) -> u64 {
        self.header.e_entry(LE)
    }

    /// The `PT_LOAD` segments in file order.
    pub fn load_segments(&self) -> &[LoadSegment] {
        &self.loads
    }

    /// Turns a virtual address into a file offset through the `PT_LOAD`
    /// segment that holds it. `executable` picks code (`Some(true)`, for probe
    /// sites), data (`Some(false)`, for semaphores) or either (`None`).
    pub fn file_offset(&self, vaddr: u64, executable: Option<bool>) -> Option<u64> {
        self.loads
            .iter()
            .filter(|s| executable.is_none_or(|x| s.executable == x))
            .find(|s| s.contains(vaddr))
            // A hostile header can put the offset near u64::MAX.
            .and_then(|s| (vaddr - s.vaddr).checked_add(s.offset))
    }

    /// Reads `len` bytes at a virtual address, if they are in the file
    /// (not in a zero-filled tail such as `.bss`).
    pub fn read_at_vaddr(&self, vaddr: u64, len: u64) -> Option<&'data [u8]> {
        let seg = self.loads.iter().find(|s| s.contains(vaddr))?;
        let rel = vaddr - seg.vaddr;
        if rel.checked_add(len)? > seg.filesz {
            return None;
        }
        self.data
            .read_bytes_at(seg.offset.checked_add(rel)?, len)
            .ok()
    }

    /// Reads a NUL-terminated string at a virtual address (without the NUL),
    /// looking at most `max` bytes ahead. `None` if it is not in the file or
    /// not terminated within `max` bytes.
    pub fn cstr_at_vaddr(&self, vaddr: u64, max: u64) -> Option<&'data [u8]> {
        let seg = self.loads.iter().find(|s| s.contains(vaddr))?;
        let rel = vaddr - seg.vaddr;
        let available = seg.filesz.checked_sub(rel)?;
        let start = seg.offset.checked_add(rel)?;
        let end = start.checked_add(available.min(max))?;
        self.data.read_bytes_at_until(start..end, 0).ok()
    }

    /// The bytes and address of a section, by name.
    pub fn section(&self, name: &str) -> Option<(u64, &'data [u8])> {
        let (_, section) = self.sections.section_by_name(LE, name.as_bytes())?;
        let bytes = section.data(LE, self.data).ok()?;
        Some((section.sh_addr(LE), bytes))
    }

    /// Whether the file has a `.note.stapsdt` section at all.
    pub fn has_stapsdt(&self) -> bool {
        self.sections
            .section_by_name(LE, b".note.stapsdt")
            .is_some()
    }

    /// Every stapsdt marker site, of every provider, in note order, with
    /// addresses adjusted for prelinking and turned into file offsets.
    ///
    /// A file without `.note.stapsdt` has no sites (an empty list).
    pub fn probe_sites(&self) -> Result<Vec<ProbeSite>, ElfError> {
        let Some((_, section)) = self.sections.section_by_name(LE, b".note.stapsdt") else {
            return Ok(Vec::new());
        };
        if section.sh_type(LE) != elf::SHT_NOTE {
            return Err(ElfError::Malformed(
                ".note.stapsdt is not a note section".into(),
            ));
        }
        let bytes = section.data(LE, self.data)?;
        let notes = parse_stapsdt_notes(bytes, section.sh_addralign(LE))?;
        // Prelink moved the file after the notes were written: `.stapsdt.base`
        // records where a known byte is now, the note where it was then.
        let base_now = self
            .sections
            .section_by_name(LE, b".stapsdt.base")
            .map(|(_, s)| s.sh_addr(LE));
        Ok(notes
            .into_iter()
            .map(|note| {
                let delta = match base_now {
                    Some(now) if note.base != 0 => now.wrapping_sub(note.base),
                    _ => 0,
                };
                let address = note.pc.wrapping_add(delta);
                let semaphore = (note.semaphore != 0).then(|| {
                    let address = note.semaphore.wrapping_add(delta);
                    Semaphore {
                        note_address: note.semaphore,
                        address,
                        file_offset: self.file_offset(address, Some(false)),
                    }
                });
                ProbeSite {
                    provider: note.provider.to_string(),
                    name: note.name.to_string(),
                    pc: note.pc,
                    base: note.base,
                    address,
                    file_offset: self.file_offset(address, Some(true)),
                    semaphore,
                    args: note.args.to_string(),
                    arg_specs: parse_arg_specs(note.args),
                }
            })
            .collect())
    }

    /// `DT_SONAME`, `DT_NEEDED`, `DT_RPATH` and `DT_RUNPATH`. A file without a
    /// dynamic section (static) gives the default (all empty).
    pub fn dynamic_info(&self) -> Result<DynamicInfo, ElfError> {
        let table = self.sections.dynamic_table(LE, self.data)?;
        let mut info = DynamicInfo::default();
        for entry in &table {
            let text = || -> Result<String, ElfError> {
                let bytes = table.string(entry)?;
                Ok(String::from_utf8_lossy(bytes).into_owned())
            };
            match entry.tag {
                elf::DT_NEEDED => info.needed.push(text()?),
                elf::DT_SONAME => info.soname = Some(text()?),
                elf::DT_RPATH => info.rpath = Some(text()?),
                elf::DT_RUNPATH => info.runpath = Some(text()?),
                _ => {}
            }
        }
        Ok(info)
    }

    /// A defined dynamic symbol by name (first match in `.dynsym`).
    pub fn dynamic_symbol(&self, name: &str) -> Option<Symbol> {
        let symbols = self.sections.symbols(LE, self.data, elf::SHT_DYNSYM).ok()?;
        let strings = symbols.strings();
        symbols
            .iter()
            .filter(|sym| !sym.is_undefined(LE))
            .find(|sym| sym.name(LE, strings) == Ok(name.as_bytes()))
            .map(|sym| Symbol {
                address: sym.st_value(LE),
                size: sym.st_size(LE),
            })
    }

    /// Every sized function symbol, sorted by address: from `.symtab` when
    /// the file has one, else `.dynsym` (a stripped file's exports).
    pub fn function_symbols(&self) -> Vec<FunctionSymbol> {
        let table = self
            .sections
            .symbols(LE, self.data, elf::SHT_SYMTAB)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.sections.symbols(LE, self.data, elf::SHT_DYNSYM).ok());
        let Some(table) = table else {
            return Vec::new();
        };
        let strings = table.strings();
        let mut out: Vec<FunctionSymbol> = table
            .iter()
            .filter(|sym| sym.st_type() == elf::STT_FUNC && !sym.is_undefined(LE))
            .filter(|sym| sym.st_size(LE) > 0)
            .filter_map(|sym| {
                let name = sym.name(LE, strings).ok()?;
                Some(FunctionSymbol {
                    address: sym.st_value(LE),
                    size: sym.st_size(LE),
                    name: String::from_utf8_lossy(name).into_owned(),
                })
            })
            .collect();
        out.sort_by_key(|f| (f.address, std::cmp::Reverse(f.size)));
        out.dedup_by_key(|f| f.address);
        out
    }

    /// The function that contains each of `addresses` (virtual addresses),
    /// from `.symtab` when the file has one, else `.dynsym`: the sized
    /// `STT_FUNC` symbol whose range covers it, or `None`.
    pub fn functions_containing(&self, addresses: &[u64]) -> Vec<Option<String>> {
        let table = self
            .sections
            .symbols(LE, self.data, elf::SHT_SYMTAB)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.sections.symbols(LE, self.data, elf::SHT_DYNSYM).ok());
        let mut out = vec![None; addresses.len()];
        let Some(table) = table else {
            return out;
        };
        let strings = table.strings();
        for sym in table.iter() {
            if sym.st_type() != elf::STT_FUNC || sym.is_undefined(LE) {
                continue;
            }
            let (start, size) = (sym.st_value(LE), sym.st_size(LE));
            if size == 0 {
                continue;
            }
            for (slot, &addr) in out.iter_mut().zip(addresses) {
                if slot.is_none() && addr >= start && addr - start < size {
                    *slot = sym
                        .name(LE, strings)
                        .ok()
                        .map(|n| String::from_utf8_lossy(n).into_owned());
                }
            }
        }
        out
    }

    /// The GNU build ID, as lowercase hex, if the file has one.
    pub fn build_id(&self) -> Option<String> {
        let (_, section) = self.sections.section_by_name(LE, b".note.gnu.build-id")?;
        let mut notes = section.notes(LE, self.data).ok()??;
        while let Ok(Some(note)) = notes.next() {
            if note.name() == elf::ELF_NOTE_GNU && note.n_type(LE) == elf::NT_GNU_BUILD_ID {
                return Some(note.desc().iter().map(|b| format!("{b:02x}")).collect());
            }
        }
        None
    }
}
