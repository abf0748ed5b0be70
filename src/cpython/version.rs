//! Which CPython a binary is, read from the file, never by running it.
//!
//! From 3.11 on, CPython exports `Py_Version`, a constant holding
//! `PY_VERSION_HEX`: the exact version, release level included. Before
//! that, the version string `PY_VERSION` ("3.9.2") sits in read-only data as
//! a string of its own; other version-shaped strings may sit beside it, so
//! the `pythonX.Y` strings, the soname or the file name pick the right one.

use std::fmt;

use object::ReadRef;
use pytap_elf::ElfImage;

/// A CPython version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PyVersion {
    /// 3.
    pub major: u8,
    /// 11 in 3.11.2.
    pub minor: u8,
    /// 2 in 3.11.2; 0 when only `major.minor` is known.
    pub micro: u8,
    /// Alpha, beta, candidate or final.
    pub level: ReleaseLevel,
    /// 1 in 3.15.0a1.
    pub serial: u8,
}

/// `PY_RELEASE_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReleaseLevel {
    /// `a`.
    Alpha,
    /// `b`.
    Beta,
    /// `rc`.
    Candidate,
    /// A release.
    Final,
}

/// Where a version was read from; says how much to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSource {
    /// The `Py_Version` symbol (3.11+): exact.
    PyVersionSymbol,
    /// The `PY_VERSION` string in read-only data: exact.
    VersionString,
    /// Only `major.minor`, from the soname or file name.
    FileName,
}

impl VersionSource {
    /// Short description for `pytap info`.
    pub fn describe(self) -> &'static str {
        match self {
            VersionSource::PyVersionSymbol => "Py_Version symbol",
            VersionSource::VersionString => "PY_VERSION string",
            VersionSource::FileName => "file name (major.minor only)",
        }
    }
}

impl PyVersion {
    /// A final release `major.minor.micro`.
    pub const fn new(major: u8, minor: u8, micro: u8) -> PyVersion {
        PyVersion {
            major,
            minor,
            micro,
            level: ReleaseLevel::Final,
            serial: 0,
        }
    }

    /// Decodes `PY_VERSION_HEX` (`0x030b02f0` is 3.11.2 final).
    pub fn from_hex(hex: u32) -> Option<PyVersion> {
        let level = match (hex >> 4) & 0xf {
            0xa => ReleaseLevel::Alpha,
            0xb => ReleaseLevel::Beta,
            0xc => ReleaseLevel::Candidate,
            0xf => ReleaseLevel::Final,
            _ => return None,
        };
        let major = (hex >> 24) as u8;
        if !(2..=4).contains(&major) {
            return None;
        }
        Some(PyVersion {
            major,
            minor: (hex >> 16) as u8,
            micro: (hex >> 8) as u8,
            level,
            serial: (hex & 0xf) as u8,
        })
    }

    /// Parses `3.11.2`, `3.15.0a1`, `3.14.0rc2` (a trailing `+` is ignored).
    pub fn parse(text: &str) -> Option<PyVersion> {
        let text = text.strip_suffix('+').unwrap_or(text);
        let mut parts = text.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let micro = rest[..digits].parse().ok()?;
        let (level, serial) = match &rest[digits..] {
            "" => (ReleaseLevel::Final, 0),
            tail => {
                let (level, serial) = if let Some(s) = tail.strip_prefix("rc") {
                    (ReleaseLevel::Candidate, s)
                } else if let Some(s) = tail.strip_prefix('a') {
                    (ReleaseLevel::Alpha, s)
                } else if let Some(s) = tail.strip_prefix('b') {
                    (ReleaseLevel::Beta, s)
                } else {
                    return None;
                };
                if serial.is_empty() || serial.len() > 2 {
                    return None;
                }
                (level, serial.parse().ok()?)
            }
        };
        if micro > 99 || minor > 99 {
            return None;
        }
        Some(PyVersion {
            major,
            minor,
            micro,
            level,
            serial,
        })
    }

    /// `(major, minor)`.
    pub fn minor_version(self) -> (u8, u8) {
        (self.major, self.minor)
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)?;
        match self.level {
            ReleaseLevel::Alpha => write!(f, "a{}", self.serial),
            ReleaseLevel::Beta => write!(f, "b{}", self.serial),
            ReleaseLevel::Candidate => write!(f, "rc{}", self.serial),
            ReleaseLevel::Final => Ok(()),
        }
    }
}

/// Reads the CPython version of an interpreter or libpython image.
///
/// `file_name` is the file's base name (`python3.9`, `libpython3.11.so.1.0`),
/// used to choose between version-shaped strings and as a last resort.
pub fn detect<'data, R: ReadRef<'data>>(
    image: &ElfImage<'data, R>,
    file_name: &str,
) -> Option<(PyVersion, VersionSource)> {
    if let Some(v) = from_py_version_symbol(image) {
        return Some((v, VersionSource::PyVersionSymbol));
    }
    let mut hints: Vec<(u8, u8)> = Vec::new();
    let soname = image.dynamic_info().ok().and_then(|d| d.soname);
    for name in soname.iter().map(String::as_str).chain([file_name]) {
        hints.extend(minor_version_in_name(name));
    }
    let rodata = image
        .section(".rodata")
        .map(|(_, bytes)| bytes)
        .unwrap_or(&[]);
    // .rodata is megabytes: look only where a string (after a NUL) starts
    // like a name (`python3.`) or like a version of a hinted minor (`3.9.`).
    let string_at = |at: usize| {
        let s = &rodata[at..];
        &s[..memchr::memchr(0, s).unwrap_or(s.len())]
    };
    if hints.is_empty() {
        for at in memchr::memmem::find_iter(rodata, b"\0python3.") {
            if let Ok(text) = std::str::from_utf8(string_at(at + 1)) {
                hints.extend(minor_version_in_name(text));
            }
        }
    }
    let mut candidates: Vec<PyVersion> = Vec::new();
    for &(major, minor) in &hints {
        let needle = format!("\0{major}.{minor}.");
        for at in memchr::memmem::find_iter(rodata, needle.as_bytes()) {
            let s = string_at(at + 1);
            if s.len() <= 12
                && let Some(v) = std::str::from_utf8(s).ok().and_then(PyVersion::parse)
            {
                candidates.push(v);
            }
        }
    }
    candidates.sort();
    candidates.dedup();
    if let [only] = candidates[..] {
        return Some((only, VersionSource::VersionString));
    }
    let (major, minor) = *hints.first()?;
    Some((PyVersion::new(major, minor, 0), VersionSource::FileName))
}

fn from_py_version_symbol<'data, R: ReadRef<'data>>(
    image: &ElfImage<'data, R>,
) -> Option<PyVersion> {
    let symbol = image.dynamic_symbol("Py_Version")?;
    // `const unsigned long Py_Version`: 8 bytes on x86-64, the value in the low 32 bits.
    let bytes = image.read_at_vaddr(symbol.address, 4)?;
    PyVersion::from_hex(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// `(3, 11)` from `python3.11`, `libpython3.11.so.1.0`, `python3.11d`.
fn minor_version_in_name(name: &str) -> Option<(u8, u8)> {
    let at = name.find("python")? + "python".len();
    let rest = &name[at..];
    let (major, rest) = rest.split_once('.')?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let major: u8 = major.parse().ok()?;
    let minor: u8 = rest[..end].parse().ok()?;
    (major == 3 || major == 2).then_some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_version_hex() {
        assert_eq!(
            PyVersion::from_hex(0x030b02f0),
            Some(PyVersion::new(3, 11, 2))
        );
        let a1 = PyVersion::from_hex(0x030f00a1).unwrap();
        assert_eq!(a1.to_string(), "3.15.0a1");
        assert_eq!(
            PyVersion::from_hex(0x030e00c2).unwrap().to_string(),
            "3.14.0rc2"
        );
        assert_eq!(PyVersion::from_hex(0x030b0200), None);
        assert_eq!(PyVersion::from_hex(0), None);
    }

    #[test]
    fn version_strings() {
        assert_eq!(PyVersion::parse("3.9.2"), Some(PyVersion::new(3, 9, 2)));
        assert_eq!(
            PyVersion::parse("3.12.0b3").unwrap().level,
            ReleaseLevel::Beta
        );
        assert_eq!(PyVersion::parse("3.13.0+"), Some(PyVersion::new(3, 13, 0)));
        for bad in [
            "3.9",
            "3.9.",
            "3.9.x",
            "3.9.2rc",
            "3.9.2z1",
            "a.b.c",
            "3.9.2a123",
        ] {
            assert_eq!(PyVersion::parse(bad), None, "{bad}");
        }
        assert!(PyVersion::new(3, 9, 2) < PyVersion::new(3, 11, 0));
    }

    #[test]
    fn names() {
        assert_eq!(minor_version_in_name("python3.9"), Some((3, 9)));
        assert_eq!(minor_version_in_name("libpython3.11.so.1.0"), Some((3, 11)));
        assert_eq!(minor_version_in_name("python3.13d"), Some((3, 13)));
        assert_eq!(minor_version_in_name("python3"), None);
        assert_eq!(minor_version_in_name("uwsgi"), None);
    }
}
