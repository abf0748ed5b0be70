//! [`BtfError`]: everything the reader refuses, with where.

use std::path::PathBuf;

use super::{HEADER_LEN, Kind, MAX_DEPTH, TypeId};

/// Why a blob could not be read or a question about it not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    /// The file could not be read.
    #[error("cannot read BTF from {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the read returned.
        #[source]
        source: std::io::Error,
    },
    /// Fewer bytes than a header, or a header longer than the blob.
    #[error("BTF blob of {len} bytes is too short for its header")]
    Truncated {
        /// The blob's length.
        len: usize,
    },
    /// The first two bytes are not `0xeb9f` in either byte order.
    #[error("not BTF: magic {found:#06x}")]
    BadMagic {
        /// The bytes read as a little-endian `u16`.
        found: u16,
    },
    /// A header version other than 1.
    #[error("BTF version {version} is not supported (only 1)")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// `hdr_len` is smaller than a version-1 header.
    #[error("BTF header length {hdr_len} is shorter than {HEADER_LEN}")]
    BadHeaderLen {
        /// The header's `hdr_len`.
        hdr_len: u32,
    },
    /// The type or string section lies (partly) outside the blob.
    #[error("BTF {section} section ({offset}+{len}) lies outside the {blob}-byte blob")]
    SectionOutOfBounds {
        /// `"type"` or `"string"`.
        section: &'static str,
        /// Its offset from the start of the blob.
        offset: u64,
        /// Its length.
        len: u64,
        /// The blob's length.
        blob: usize,
    },
    /// A type record (or the data after it) runs past the type section.
    #[error("BTF type {id} at byte {offset} runs past the type section")]
    TypeTruncated {
        /// The id the record would have.
        id: TypeId,
        /// Its offset in the type section.
        offset: usize,
    },
    /// A type record of a kind this reader does not know (so its length is
    /// unknown and nothing after it can be read).
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind {
        /// The record's id.
        id: TypeId,
        /// The raw kind.
        kind: u8,
    },
    /// A name offset outside the string section, or a name without its NUL.
    #[error("BTF string at offset {offset} is outside the string section or unterminated")]
    BadString {
        /// The offset into the string section.
        offset: u32,
    },
    /// A type refers to a type id the blob does not have.
    #[error("BTF type {referrer} refers to type {id}, which does not exist")]
    BadTypeId {
        /// The missing id.
        id: TypeId,
        /// The type that refers to it (0 for a caller's request).
        referrer: TypeId,
    },
    /// A chain of typedefs and modifiers, nested anonymous members or arrays
    /// deeper than the limit (32), usually a cycle.
    #[error("BTF type {id}: type chain or nesting deeper than {MAX_DEPTH}")]
    TooDeep {
        /// The type at which the limit was reached.
        id: TypeId,
    },
    /// A path search visited more members than any real blob needs.
    #[error("BTF search for {member:?} visited too many members")]
    TooComplex {
        /// The member searched for.
        member: String,
    },
    /// A member path needs a struct or union name and at least one member.
    #[error("a member path needs a type name and at least one member name, none empty")]
    BadPath,
    /// No struct or union has this name.
    #[error("no struct or union named {name:?} in BTF")]
    NoSuchType {
        /// The name.
        name: String,
    },
    /// The struct or union has no member of this name (anonymous members
    /// searched too).
    #[error("{within} has no member {member:?}")]
    NoSuchMember {
        /// The path up to the type searched, e.g. `task_struct.thread`.
        within: String,
        /// The missing member.
        member: String,
    },
    /// The path goes on through a member that is not a struct or union.
    #[error("{within} is a {kind:?}, not a struct or union, so it has no member {member:?}")]
    NotComposite {
        /// The path to that member.
        within: String,
        /// What it resolves to (`None` for `void`).
        kind: Option<Kind>,
        /// The member asked for next.
        member: String,
    },
    /// The member is a bitfield or does not start on a byte.
    #[error("{path} is a bitfield (bit offset {bit_offset}): it has no byte offset")]
    Bitfield {
        /// The full path.
        path: String,
        /// Its bit offset from the start of the outer type.
        bit_offset: u64,
    },
    /// The type has no size (a function, a forward declaration, `void`).
    #[error("BTF type {id} ({kind:?}) has no size")]
    Unsized {
        /// The type.
        id: TypeId,
        /// Its kind (`None` for `void`).
        kind: Option<Kind>,
    },
}
