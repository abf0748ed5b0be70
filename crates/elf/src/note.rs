//! `.note.stapsdt` descriptors, as `<sys/sdt.h>` (SystemTap SDT v3) lays them out.
//!
//! Each marker site is one ELF note with owner `stapsdt` and type 3. Its
//! descriptor holds three addresses (the probe location `pc`, the link-time
//! address of `.stapsdt.base`, and the semaphore, 0 when there is none),
//! followed by three NUL-terminated strings: provider, name and argument
//! spec. See <https://sourceware.org/systemtap/wiki/UserSpaceProbeImplementation>.
//!
//! This module only splits the section's bytes into notes. Address
//! adjustment and file offsets belong to [`crate::image`].

use thiserror::Error;

/// ELF note type of a SystemTap SDT v3 descriptor.
pub const NT_STAPSDT: u32 = 3;
/// Owner name of SystemTap SDT notes (without its NUL).
pub const STAPSDT_OWNER: &[u8] = b"stapsdt";

/// One marker site as written in the note, before any address adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StapsdtNote<'a> {
    /// Link-time address of the probe instruction.
    pub pc: u64,
    /// Link-time address of `.stapsdt.base` when the note was written.
    pub base: u64,
    /// Link-time address of the 16-bit semaphore, 0 when the site has none.
    pub semaphore: u64,
    /// Provider, e.g. `python`.
    pub provider: &'a str,
    /// Marker name, e.g. `function__entry`.
    pub name: &'a str,
    /// Argument spec string, e.g. `8@%rbp 8@%r12 -4@%eax`; may be empty.
    pub args: &'a str,
}

/// Why a `.note.stapsdt` section could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoteError {
    /// A note header or body runs past the end of the section.
    #[error("note at section offset {offset:#x} is truncated")]
    Truncated {
        /// Offset of the note header within the section.
        offset: usize,
    },
    /// A stapsdt descriptor is too short for three addresses and three strings.
    #[error("stapsdt descriptor at section offset {offset:#x} is too short ({len} bytes)")]
    ShortDescriptor {
        /// Offset of the note header within the section.
        offset: usize,
        /// Descriptor length found.
        len: usize,
    },
    /// Provider, name or argument string is missing its NUL or is not UTF-8.
    #[error("stapsdt descriptor at section offset {offset:#x} has a malformed {field} string")]
    BadString {
        /// Offset of the note header within the section.
        offset: usize,
        /// Which string: `provider`, `name` or `args`.
        field: &'static str,
    },
    /// Note alignment must be 4 or 8 (gABI); anything else is not an ELF note section.
    #[error("unsupported note alignment {0}")]
    BadAlignment(u64),
}

/// Splits the bytes of a `.note.stapsdt` section into marker notes.
///
/// `align` is the section's `sh_addralign` (4 for every toolchain seen, 8 is
/// allowed by the gABI; 0 and 1 mean 4). Notes of other owners or types are
/// skipped, as readelf does. The result keeps section order.
pub fn parse_stapsdt_notes(section: &[u8], align: u64) -> Result<Vec<StapsdtNote<'_>>, NoteError> {
    let align = match align {
        0..=4 => 4usize,
        8 => 8,
        other => return Err(NoteError::BadAlignment(other)),
    };
    let mut notes = Vec::new();
    let mut offset = 0usize;
    // A trailing run shorter than a header is padding, not a note.
    while section.len().saturating_sub(offset) >= 12 {
        let header_at = offset;
        let word = |at: usize| -> Result<u32, NoteError> {
            section
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(NoteError::Truncated { offset: header_at })
        };
        let namesz = word(offset)? as usize;
        let descsz = word(offset + 4)? as usize;
        let kind = word(offset + 8)?;
        let truncated = NoteError::Truncated { offset: header_at };
        let name_at = offset + 12;
        let desc_at = name_at
            .checked_add(round_up(namesz, align).ok_or(truncated.clone())?)
            .ok_or(truncated.clone())?;
        let next = desc_at
            .checked_add(round_up(descsz, align).ok_or(truncated.clone())?)
            .ok_or(truncated.clone())?;
        let name = section
            .get(name_at..name_at + namesz)
            .ok_or(truncated.clone())?;
        let desc = section
            .get(desc_at..desc_at.checked_add(descsz).ok_or(truncated.clone())?)
            .ok_or(truncated)?;
        if kind == NT_STAPSDT && trim_nul(name) == STAPSDT_OWNER {
            notes.push(parse_descriptor(desc, header_at)?);
        }
        // The last note's padding may be cut off at the section end.
        offset = next.min(section.len());
    }
    Ok(notes)
}

fn parse_descriptor(desc: &[u8], offset: usize) -> Result<StapsdtNote<'_>, NoteError> {
    const ADDRS: usize = 24;
    let short = NoteError::ShortDescriptor {
        offset,
        len: desc.len(),
    };
    let addr = |i: usize| -> Result<u64, NoteError> {
        let b = desc.get(i * 8..i * 8 + 8).ok_or(short.clone())?;
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        Ok(u64::from_le_bytes(word))
    };
    let (pc, base, semaphore) = (addr(0)?, addr(1)?, addr(2)?);
    let rest = desc.get(ADDRS..).ok_or(short)?;
    let next_string = |rest, field| split_cstr(rest).ok_or(NoteError::BadString { offset, field });
    let (provider, rest) = next_string(rest, "provider")?;
    let (name, rest) = next_string(rest, "name")?;
    // Old toolchains omit the argument string entirely when a probe has none.
    let args = if rest.is_empty() {
        ""
    } else {
        next_string(rest, "args")?.0
    };
    Ok(StapsdtNote {
        pc,
        base,
        semaphore,
        provider,
        name,
        args,
    })
}

/// Splits a NUL-terminated UTF-8 string off the front of `bytes`.
fn split_cstr(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    Some((text, &bytes[end + 1..]))
}

fn trim_nul(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == 0) {
        Some(end) => &name[..end],
        None => name,
    }
}

fn round_up(n: usize, align: usize) -> Option<usize> {
    n.checked_add(align - 1).map(|v| v & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one note the way `<sys/sdt.h>` does.
    pub(crate) fn note(
        pc: u64,
        base: u64,
        sem: u64,
        provider: &str,
        name: &str,
        args: &str,
    ) -> Vec<u8> {
        let mut desc = Vec::new();
        for a in [pc, base, sem] {
            desc.extend_from_slice(&a.to_le_bytes());
        }
        for s in [provider, name, args] {
            desc.extend_from_slice(s.as_bytes());
            desc.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&NT_STAPSDT.to_le_bytes());
        out.extend_from_slice(b"stapsdt\0");
        out.extend_from_slice(&desc);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    #[test]
    fn parses_python_311_function_entry() {
        let bytes = note(
            0x4f20a1,
            0x8cc5a0,
            0xa84260,
            "python",
            "function__entry",
            "8@%rbp 8@%r12 -4@%eax",
        );
        let notes = parse_stapsdt_notes(&bytes, 4).unwrap();
        assert_eq!(
            notes,
            vec![StapsdtNote {
                pc: 0x4f20a1,
                base: 0x8cc5a0,
                semaphore: 0xa84260,
                provider: "python",
                name: "function__entry",
                args: "8@%rbp 8@%r12 -4@%eax",
            }]
        );
    }

    #[test]
    fn keeps_every_site_in_order_and_skips_foreign_notes() {
        let mut bytes = note(1, 0, 0, "python", "audit", "8@%rbx 8@%r15");
        // A GNU build-id note in the same section must be skipped.
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(b"GNU\0");
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes.extend(note(2, 0, 0, "python", "audit", "8@%r12 8@%rax"));
        let notes = parse_stapsdt_notes(&bytes, 4).unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!((notes[0].pc, notes[1].pc), (1, 2));
        assert_eq!(notes[1].args, "8@%r12 8@%rax");
    }

    #[test]
    fn missing_args_string_means_no_args() {
        let mut desc = Vec::new();
        for a in [5u64, 0, 0] {
            desc.extend_from_slice(&a.to_le_bytes());
        }
        desc.extend_from_slice(b"p\0n\0");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&8u32.to_le_bytes());
        bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(b"stapsdt\0");
        bytes.extend_from_slice(&desc);
        let notes = parse_stapsdt_notes(&bytes, 4).unwrap();
        assert_eq!(notes[0].args, "");
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let bytes = note(1, 2, 3, "python", "gc__start", "-4@112(%rsp)");
        for cut in 12..bytes.len() - 4 {
            let r = parse_stapsdt_notes(&bytes[..cut], 4);
            assert!(r.is_err(), "cut at {cut} parsed: {r:?}");
        }
        // Fewer than 12 bytes is trailing padding, not a note.
        assert_eq!(parse_stapsdt_notes(&bytes[..11], 4).unwrap(), vec![]);
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        assert!(parse_stapsdt_notes(&bytes, 4).is_err());
        assert!(parse_stapsdt_notes(&bytes, 8).is_err());
        assert!(parse_stapsdt_notes(&bytes, 3).is_err());
        assert_eq!(
            parse_stapsdt_notes(&bytes, 16),
            Err(NoteError::BadAlignment(16))
        );
    }

    #[test]
    fn non_utf8_and_unterminated_strings_are_errors() {
        let mut bytes = note(1, 2, 3, "python", "x", "");
        let provider_at = 12 + 8 + 24;
        bytes[provider_at] = 0xff;
        assert_eq!(
            parse_stapsdt_notes(&bytes, 4),
            Err(NoteError::BadString {
                offset: 0,
                field: "provider"
            })
        );
    }
}
