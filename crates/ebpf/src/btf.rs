//! A reader of BTF, the kernel's type information (`/sys/kernel/btf/vmlinux`),
//! enough to find where a field lives inside a kernel struct, such as
//! `task_struct.thread.fsbase`, the thread pointer a stack sampler reads from
//! `bpf_get_current_task()`:
//!
//! ```no_run
//! use pytap_ebpf::btf::{Btf, VMLINUX_PATH};
//!
//! let btf = Btf::from_file(VMLINUX_PATH)?; // "/sys/kernel/btf/vmlinux"
//! let fsbase = btf.member_offset(&["task_struct", "thread", "fsbase"])?;
//! println!("task_struct.thread.fsbase is at byte {fsbase}");
//! # Ok::<(), pytap_ebpf::btf::BtfError>(())
//! ```
//!
//! The format is the kernel's `Documentation/bpf/btf.rst`: a header, a type
//! section (records `struct btf_type`, each followed by data whose length
//! depends on its kind) and a string section. Every kind up to `ENUM64`
//! (19) is recognised and skipped by its exact length; only structs, unions,
//! typedefs, type modifiers, ints, arrays and pointers are interpreted.
//! Blobs of either byte order are read (the magic says which). Split BTF
//! (kernel modules, whose ids continue the vmlinux ones) is not supported.
//!
//! The input is untrusted: every offset, length and type id is checked, type
//! chains and nesting are bounded, and nothing here panics; failures are
//! [`BtfError`]s. [`Btf::from_file`] is this crate's one piece of I/O, a
//! plain read of the file before [`Btf::parse`].

use std::path::Path;

mod error;
mod kind;

pub use self::error::BtfError;
pub use self::kind::Kind;

/// Where the running kernel publishes its own BTF (`CONFIG_DEBUG_INFO_BTF`).
pub const VMLINUX_PATH: &str = "/sys/kernel/btf/vmlinux";

/// `BTF_MAGIC`, the first two bytes of a blob in its own byte order.
pub const BTF_MAGIC: u16 = 0xeb9f;

/// Size of a version-1 header (`struct btf_header`); later headers may be
/// longer and say so in `hdr_len`.
pub const HEADER_LEN: usize = 24;

/// Bytes of a pointer in the kernels pytap supports (64-bit only), used for
/// the size of `PTR` types, which BTF does not record.
pub const POINTER_SIZE: u32 = 8;

/// Longest typedef/modifier chain (and deepest nesting of anonymous members
/// or arrays) followed before giving up, as libbpf's `MAX_RESOLVE_DEPTH`.
const MAX_DEPTH: u32 = 32;

/// Members visited by one path search before giving up: real kernels need a
/// few hundred; a crafted blob of anonymous members within anonymous
/// members could otherwise ask for an exponential number.
const SEARCH_BUDGET: u32 = 1 << 20;

/// A type id: an index into the type section counted from 1; 0 is `void`.
pub type TypeId = u32;

/// One type record, located: the three header words and where its trailing
/// data starts in the blob.
#[derive(Debug, Clone, Copy)]
struct Record {
    name_off: u32,
    kind: Kind,
    kind_flag: bool,
    vlen: u16,
    /// `size` or `type`, by kind.
    size_or_type: u32,
    trailer: usize,
}

/// A member found by [`Btf::member`]: where it is from the start of the
/// outermost type, and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Offset in bits from the start of the path's first type.
    pub bit_offset: u64,
    /// Width in bits when the member is a bitfield, 0 otherwise.
    pub bitfield_bits: u8,
    /// The member's declared type (before typedefs and modifiers).
    pub type_id: TypeId,
}

/// A parsed BTF blob.
#[derive(Debug, Clone)]
pub struct Btf {
    data: Vec<u8>,
    big_endian: bool,
    /// Record of type id `i + 1`.
    types: Vec<Record>,
    strings_start: usize,
    strings_len: usize,
}

impl Btf {
    /// Reads and parses a BTF file, such as `/sys/kernel/btf/vmlinux`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Btf, BtfError> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::from_vec(data)
    }

    /// Parses a blob (copied).
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        Btf::from_vec(data.to_vec())
    }

    /// Parses a blob, taking it.
    pub fn from_vec(data: Vec<u8>) -> Result<Btf, BtfError> {
        let len = data.len();
        let head = data.get(..HEADER_LEN).ok_or(BtfError::Truncated { len })?;
        let big_endian = match [head[0], head[1]] {
            m if m == BTF_MAGIC.to_le_bytes() => false,
            m if m == BTF_MAGIC.to_be_bytes() => true,
            m => {
                return Err(BtfError::BadMagic {
                    found: u16::from_le_bytes(m),
                });
            }
        };
        if head[2] != 1 {
            return Err(BtfError::UnsupportedVersion { version: head[2] });
        }
        let word = |at: usize| read_u32(head, at, big_endian).unwrap_or(0);
        let hdr_len = word(4);
        if (hdr_len as usize) < HEADER_LEN {
            return Err(BtfError::BadHeaderLen { hdr_len });
        }
        if hdr_len as usize > len {
            return Err(BtfError::Truncated { len });
        }
        let section = |name, off: u32, size: u32| {
            let start = u64::from(hdr_len) + u64::from(off);
            let end = start + u64::from(size);
            if end > len as u64 {
                return Err(BtfError::SectionOutOfBounds {
                    section: name,
                    offset: start,
                    len: u64::from(size),
                    blob: len,
                });
            }
            // Both fit in usize: they are at most `len`.
            Ok((start as usize, size as usize))
        };
        let (types_start, types_len) = section("type", word(8), word(12))?;
        let (strings_start, strings_len) = section("string", word(16), word(20))?;
        let mut btf = Btf {
            data,
            big_endian,
            types: Vec::new(),
            strings_start,
            strings_len,
        };
        btf.types = btf.index_types(types_start, types_len)?;
        Ok(btf)
    }

    /// Walks the type section once, recording where each type is.
    fn index_types(&self, start: usize, len: usize) -> Result<Vec<Record>, BtfError> {
        let section = &self.data[start..start + len];
        let mut types = Vec::with_capacity(len / 12);
        let mut at = 0usize;
        while at < len {
            // Records are at least 12 bytes, so ids stay far below u32::MAX.
            let id = types.len() as u32 + 1;
            let truncated = BtfError::TypeTruncated { id, offset: at };
            let word = |k: usize| read_u32(section, at + 4 * k, self.big_endian);
            let (Some(name_off), Some(info), Some(size_or_type)) = (word(0), word(1), word(2))
            else {
                return Err(truncated);
            };
            let raw_kind = ((info >> 24) & 0x1f) as u8;
            let kind =
                Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind { id, kind: raw_kind })?;
            let vlen = (info & 0xffff) as u16;
            let next = at + 12 + kind.trailer_len(usize::from(vlen));
            if next > len {
                return Err(truncated);
            }
            types.push(Record {
                name_off,
                kind,
                kind_flag: info >> 31 != 0,
                vlen,
                size_or_type,
                trailer: start + at + 12,
            });
            at = next;
        }
        Ok(types)
    }

    /// Number of types (ids run from 1 to this, inclusive).
    pub fn type_count(&self) -> u32 {
        // At most len / 12 records, so this fits.
        self.types.len() as u32
    }

    fn record(&self, id: TypeId, referrer: TypeId) -> Result<&Record, BtfError> {
        let bad = BtfError::BadTypeId { id, referrer };
        let index = usize::try_from(id).ok().and_then(|i| i.checked_sub(1));
        index.and_then(|i| self.types.get(i)).ok_or(bad)
    }

    /// The kind of type `id` (`None` for 0, `void`).
    pub fn kind(&self, id: TypeId) -> Result<Option<Kind>, BtfError> {
        if id == 0 {
            return Ok(None);
        }
        Ok(Some(self.record(id, 0)?.kind))
    }

    /// The name of type `id`, as raw bytes (empty for anonymous types and
    /// `void`).
    pub fn name(&self, id: TypeId) -> Result<&[u8], BtfError> {
        if id == 0 {
            return Ok(b"");
        }
        let name_off = self.record(id, 0)?.name_off;
        self.string(name_off)
    }

    /// The NUL-terminated string at `offset` of the string section, without
    /// its NUL.
    fn string(&self, offset: u32) -> Result<&[u8], BtfError> {
        let bad = BtfError::BadString { offset };
        let off = offset as usize;
        if off >= self.strings_len {
            return Err(bad);
        }
        let section = &self.data[self.strings_start..self.strings_start + self.strings_len];
        let rest = &section[off..];
        let end = rest.iter().position(|b| *b == 0).ok_or(bad)?;
        Ok(&rest[..end])
    }

    fn u32_at(&self, at: usize) -> u32 {
        // Trailers were bounds-checked when the types were indexed.
        read_u32(&self.data, at, self.big_endian).unwrap_or(0)
    }

    /// Follows typedefs, `const`, `volatile`, `restrict` and type tags from
    /// `id` to the type they name (0 for `void`).
    pub fn resolve(&self, id: TypeId) -> Result<TypeId, BtfError> {
        let mut id = id;
        for _ in 0..=MAX_DEPTH {
            if id == 0 {
                return Ok(0);
            }
            let r = self.record(id, 0)?;
            if !r.kind.is_alias() {
                return Ok(id);
            }
            self.record(r.size_or_type, id)?;
            id = r.size_or_type;
        }
        Err(BtfError::TooDeep { id })
    }

    /// The first struct or union called `name`.
    pub fn find_composite(&self, name: &str) -> Result<TypeId, BtfError> {
        for (i, r) in self.types.iter().enumerate() {
            if matches!(r.kind, Kind::Struct | Kind::Union)
                && self.string(r.name_off).ok() == Some(name.as_bytes())
            {
                // i < type_count, which fits in u32.
                return Ok(i as u32 + 1);
            }
        }
        Err(BtfError::NoSuchType {
            name: name.to_owned(),
        })
    }

    /// Size in bytes of type `id`, through typedefs and modifiers; pointers
    /// are [`POINTER_SIZE`], arrays their element size times their length.
    pub fn type_size(&self, id: TypeId) -> Result<u32, BtfError> {
        let mut id = self.resolve(id)?;
        let mut count: u32 = 1;
        for _ in 0..=MAX_DEPTH {
            let no_size = |kind| BtfError::Unsized { id, kind };
            if id == 0 {
                return Err(no_size(None));
            }
            let r = *self.record(id, 0)?;
            let size = match r.kind {
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Float
                | Kind::Datasec => r.size_or_type,
                Kind::Ptr => POINTER_SIZE,
                Kind::Array => {
                    let elem = self.u32_at(r.trailer);
                    let n = self.u32_at(r.trailer + 8);
                    count = count.checked_mul(n).ok_or(no_size(Some(Kind::Array)))?;
                    self.record(elem, id)?;
                    id = self.resolve(elem)?;
                    continue;
                }
                other => return Err(no_size(Some(other))),
            };
            return size.checked_mul(count).ok_or(no_size(Some(r.kind)));
        }
        Err(BtfError::TooDeep { id })
    }

    /// Member `index` of struct or union `id`: name offset, type, bit
    /// offset and bitfield width. With `kind_flag` set the offset word packs
    /// the bitfield width in its top 8 bits; without it, a bitfield is an
    /// `INT` member whose encoding carries its own bit offset and width.
    fn raw_member(&self, id: TypeId, r: &Record, index: u16) -> Result<RawMember, BtfError> {
        let at = r.trailer + 12 * usize::from(index);
        let (name_off, type_id, offset) =
            (self.u32_at(at), self.u32_at(at + 4), self.u32_at(at + 8));
        if type_id != 0 {
            self.record(type_id, id)?;
        }
        if r.kind_flag {
            return Ok(RawMember {
                name_off,
                type_id,
                bit_offset: u64::from(offset & 0x00ff_ffff),
                bitfield_bits: (offset >> 24) as u8,
            });
        }
        let (mut bit_offset, mut bitfield_bits) = (u64::from(offset), 0u8);
        let target = self.resolve(type_id)?;
        if target != 0 {
            let t = self.record(target, id)?;
            if t.kind == Kind::Int {
                let encoding = self.u32_at(t.trailer);
                let (int_offset, int_bits) = ((encoding >> 16) & 0xff, encoding & 0xff);
                if int_offset != 0 || u64::from(int_bits) != 8 * u64::from(t.size_or_type) {
                    bit_offset += u64::from(int_offset);
                    bitfield_bits = int_bits as u8;
                }
            }
        }
        Ok(RawMember {
            name_off,
            type_id,
            bit_offset,
            bitfield_bits,
        })
    }

    /// Looks for member `name` in struct or union `id`, descending into
    /// anonymous struct and union members; the offset is from `id`'s start.
    fn find_member(
        &self,
        id: TypeId,
        name: &[u8],
        depth: u32,
        budget: &mut u32,
    ) -> Result<Option<Member>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { id });
        }
        let r = *self.record(id, 0)?;
        for index in 0..r.vlen {
            *budget = budget.checked_sub(1).ok_or_else(|| BtfError::TooComplex {
                member: String::from_utf8_lossy(name).into_owned(),
            })?;
            let m = self.raw_member(id, &r, index)?;
            let member_name = self.string(m.name_off)?;
            if member_name == name {
                return Ok(Some(Member {
                    bit_offset: m.bit_offset,
                    bitfield_bits: m.bitfield_bits,
                    type_id: m.type_id,
                }));
            }
            if !member_name.is_empty() {
                continue;
            }
            let inner = self.resolve(m.type_id)?;
            if matches!(self.kind(inner)?, Some(Kind::Struct | Kind::Union))
                && let Some(found) = self.find_member(inner, name, depth + 1, budget)?
            {
                return Ok(Some(Member {
                    bit_offset: m.bit_offset + found.bit_offset,
                    ..found
                }));
            }
        }
        Ok(None)
    }

    /// The member at `path`: a struct or union name, then member names, each
    /// member (but the last) itself a struct or union, through typedefs and
    /// modifiers. Members of anonymous structs and unions are found as if
    /// they were members of the enclosing type, as in C. Pointers are not
    /// followed: `["task_struct", "mm", "pgd"]` is [`BtfError::NotComposite`].
    pub fn member(&self, path: &[&str]) -> Result<Member, BtfError> {
        let [root, members @ ..] = path else {
            return Err(BtfError::BadPath);
        };
        if members.is_empty() || path.iter().any(|p| p.is_empty()) {
            return Err(BtfError::BadPath);
        }
        let mut within = self.find_composite(root)?;
        let mut total: Option<Member> = None;
        let mut budget = SEARCH_BUDGET;
        for (i, name) in members.iter().enumerate() {
            let so_far = || path[..=i].join(".");
            if let Some(m) = total {
                within = self.resolve(m.type_id)?;
                let kind = self.kind(within)?;
                if !matches!(kind, Some(Kind::Struct | Kind::Union)) {
                    return Err(BtfError::NotComposite {
                        within: so_far(),
                        kind,
                        member: (*name).to_owned(),
                    });
                }
            }
            let found = self
                .find_member(within, name.as_bytes(), 0, &mut budget)?
                .ok_or_else(|| BtfError::NoSuchMember {
                    within: so_far(),
                    member: (*name).to_owned(),
                })?;
            total = Some(Member {
                bit_offset: total.map_or(0, |t| t.bit_offset) + found.bit_offset,
                ..found
            });
        }
        total.ok_or(BtfError::BadPath)
    }

    /// The byte offset of the member at `path` (see [`Btf::member`]) from
    /// the start of its first type: `["task_struct", "thread", "fsbase"]`
    /// gives where `fsbase` is in a `task_struct`. Bitfields, and members
    /// that do not start on a byte, are [`BtfError::Bitfield`].
    pub fn member_offset(&self, path: &[&str]) -> Result<u32, BtfError> {
        let m = self.member(path)?;
        let bitfield = || BtfError::Bitfield {
            path: path.join("."),
            bit_offset: m.bit_offset,
        };
        if m.bitfield_bits != 0 || m.bit_offset % 8 != 0 {
            return Err(bitfield());
        }
        u32::try_from(m.bit_offset / 8).map_err(|_| bitfield())
    }
}

/// A member record as stored, with the bitfield encoding undone.
#[derive(Debug, Clone, Copy)]
struct RawMember {
    name_off: u32,
    type_id: TypeId,
    bit_offset: u64,
    bitfield_bits: u8,
}

/// The `u32` at `at` of `bytes` in the blob's byte order; `None` past the end.
fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    })
}

#[cfg(test)]
mod tests;
