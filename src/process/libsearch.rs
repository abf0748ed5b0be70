//! Where the dynamic loader would find a `DT_NEEDED` library.
//!
//! Needed to attach to a libpython that is not mapped yet: a command pytap
//! launches (`-c`) whose markers live in `libpython3.X.so`, or a path given
//! to `pytap list` that is a shared-build interpreter. The order is glibc's
//! (`ld.so(8)`): `DT_RPATH` (only without `DT_RUNPATH`), `LD_LIBRARY_PATH`,
//! `DT_RUNPATH`, `/etc/ld.so.cache`, then the default directories.
//! `parse_ld_so_cache` and `search_order` are pure; `find` does the I/O.

use std::path::{Path, PathBuf};

use pytap_elf::DynamicInfo;

/// The default directories of Debian's x86-64 loader, after the cache.
const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where to look for a library: directories, and whether to consult the cache
/// between them (it comes after RUNPATH, before the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchStep {
    /// Look in this directory.
    Dir(PathBuf),
    /// Consult `/etc/ld.so.cache`.
    Cache,
}

/// The search order for libraries needed by the object at `origin_dir`
/// (the directory `$ORIGIN` expands to) with the given dynamic section and
/// `LD_LIBRARY_PATH`.
pub fn search_order(
    dynamic: &DynamicInfo,
    origin_dir: &Path,
    ld_library_path: Option<&str>,
) -> Vec<SearchStep> {
    let expand = |list: &str| -> Vec<SearchStep> {
        list.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| {
                let d = d.replace("${ORIGIN}", "$ORIGIN");
                let d = d.replace("$ORIGIN", &origin_dir.to_string_lossy());
                SearchStep::Dir(PathBuf::from(d))
            })
            .collect()
    };
    let mut steps = Vec::new();
    if dynamic.runpath.is_none() {
        steps.extend(dynamic.rpath.as_deref().map(expand).unwrap_or_default());
    }
    steps.extend(ld_library_path.map(expand).unwrap_or_default());
    steps.extend(dynamic.runpath.as_deref().map(expand).unwrap_or_default());
    steps.push(SearchStep::Cache);
    steps.extend(
        DEFAULT_DIRS
            .iter()
            .map(|d| SearchStep::Dir(PathBuf::from(d))),
    );
    steps
}

/// Entries of a glibc `ld.so.cache` (format `glibc-ld.so.cache1.1`) for
/// x86-64 libraries: `(soname, path)`. An unreadable cache gives no entries.
pub fn parse_ld_so_cache(bytes: &[u8]) -> Vec<(String, String)> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    const HEADER: usize = 48;
    const ENTRY: usize = 24;
    // Old caches put a legacy table first; the new-format header follows it.
    let Some(start) = bytes.windows(MAGIC.len()).position(|w| w == MAGIC) else {
        return Vec::new();
    };
    let cache = &bytes[start..];
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(cache.get(at..at + 4)?.try_into().ok()?))
    };
    let string_at = |at: u32| -> Option<String> {
        let tail = cache.get(at as usize..)?;
        let end = tail.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    };
    let Some(count) = u32_at(20) else {
        return Vec::new();
    };
    (0..count as usize)
        .map_while(|i| {
            let at = HEADER.checked_add(i.checked_mul(ENTRY)?)?;
            let flags = u32_at(at)?;
            Some((flags, u32_at(at + 4)?, u32_at(at + 8)?))
        })
        // FLAG_X8664_LIB64 (0x0300) with FLAG_ELF_LIBC6 (0x0003).
        .filter(|(flags, _, _)| flags & 0xff00 == 0x0300 && flags & 0xff == 0x03)
        .filter_map(|(_, key, value)| Some((string_at(key)?, string_at(value)?)))
        .collect()
}

/// Finds a needed library (`libpython3.11.so.1.0`) as the loader would.
/// `root` prefixes every absolute path (`/proc/PID/root` for a process in
/// another mount namespace, `/` otherwise).
pub fn find(needed: &str, steps: &[SearchStep], root: &Path) -> Option<PathBuf> {
    if needed.contains('/') {
        return Some(PathBuf::from(needed));
    }
    let on_root = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let mut cache: Option<Vec<(String, String)>> = None;
    for step in steps {
        match step {
            SearchStep::Dir(dir) => {
                let candidate = dir.join(needed);
                if on_root(&candidate).is_file() {
                    return Some(candidate);
                }
            }
            SearchStep::Cache => {
                let entries = cache.get_or_insert_with(|| {
                    std::fs::read(on_root(Path::new("/etc/ld.so.cache")))
                        .map(|b| parse_ld_so_cache(&b))
                        .unwrap_or_default()
                });
                if let Some((_, path)) = entries.iter().find(|(name, _)| name == needed) {
                    return Some(PathBuf::from(path));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpath_is_ignored_when_runpath_exists() {
        let dynamic = DynamicInfo {
            rpath: Some("/r".into()),
            runpath: Some("$ORIGIN/../lib:/run".into()),
            ..DynamicInfo::default()
        };
        let order = search_order(&dynamic, Path::new("/opt/py/bin"), Some("/ld1::/ld2"));
        assert_eq!(
            &order[..5],
            &[
                SearchStep::Dir("/ld1".into()),
                SearchStep::Dir("/ld2".into()),
                SearchStep::Dir("/opt/py/bin/../lib".into()),
                SearchStep::Dir("/run".into()),
                SearchStep::Cache,
            ]
        );
        let rpath_only = DynamicInfo {
            rpath: Some("/r".into()),
            ..DynamicInfo::default()
        };
        assert_eq!(
            search_order(&rpath_only, Path::new("/"), None)[0],
            SearchStep::Dir("/r".into())
        );
    }

    #[test]
    fn cache_entries() {
        let mut cache = b"glibc-ld.so.cache1.1".to_vec();
        cache.extend_from_slice(&1u32.to_le_bytes()); // nlibs at 20... after magic(20)
        // The header: magic(20) nlibs(4) len_strings(4) flags(1)+pad(3) ext(4) unused(12) = 48.
        cache.truncate(20);
        cache.extend_from_slice(&2u32.to_le_bytes());
        cache.extend_from_slice(&0u32.to_le_bytes());
        cache.extend_from_slice(&[0u8; 4 + 4 + 12]);
        assert_eq!(cache.len(), 48);
        let strings_at = 48 + 2 * 24;
        let mut strings = Vec::new();
        let mut add = |s: &str| {
            let at = strings_at + strings.len();
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at as u32
        };
        let k1 = add("libpython3.11.so.1.0");
        let v1 = add("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0");
        let k2 = add("libfoo.so");
        let v2 = add("/usr/lib32/libfoo.so");
        for (flags, k, v) in [(0x0303u32, k1, v1), (0x0803, k2, v2)] {
            cache.extend_from_slice(&flags.to_le_bytes());
            cache.extend_from_slice(&k.to_le_bytes());
            cache.extend_from_slice(&v.to_le_bytes());
            cache.extend_from_slice(&[0u8; 12]);
        }
        cache.extend_from_slice(&strings);
        assert_eq!(
            parse_ld_so_cache(&cache),
            vec![(
                "libpython3.11.so.1.0".to_string(),
                "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0".to_string()
            )]
        );
        // Any prefix parses without panicking.
        for cut in 0..cache.len() {
            let _ = parse_ld_so_cache(&cache[..cut]);
        }
    }

    #[test]
    fn the_system_cache_knows_libpython() {
        // Debian's base image has libpython3.11 installed.
        let bytes = std::fs::read("/etc/ld.so.cache").expect("/etc/ld.so.cache");
        let entries = parse_ld_so_cache(&bytes);
        assert!(
            entries.iter().any(|(k, _)| k == "libc.so.6"),
            "libc.so.6 missing from {} entries",
            entries.len()
        );
    }
}
