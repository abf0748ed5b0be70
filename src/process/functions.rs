//! Functions of the files a target runs, found by their symbols' names
//! for uprobes (D's `pid` provider, SystemTap's `.function("NAME")`).
//!
//! The files are the interpreter's module and what it links, as the
//! loader would find them (`DT_NEEDED`, [`super::libsearch`]): a command
//! pytap holds at its `execve` has mapped nothing else yet. A running
//! process adds the code files it maps (`dlopen`ed ones). Each file's
//! function symbols are `.symtab`'s, else a stripped file's `.dynsym`
//! (`pytap_elf::ElfImage::function_symbols`, the symbolizer's reading
//! too), and a symbol becomes the file offset a uprobe is placed at.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};

use pytap_elf::ElfImage;

use super::libsearch;
use super::module::{FileRef, Module};

/// Files a `DT_NEEDED` walk opens at most (a bound for hostile inputs).
const MAX_FILES: usize = 64;

/// A file the target runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFile {
    /// The path as the process sees it.
    pub path: PathBuf,
    /// The host path to read and attach to.
    pub open_path: PathBuf,
    /// `st_dev` and inode (one file seen by two paths is one file).
    pub id: (u64, u64),
}

/// A function found: where a uprobe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSite {
    /// The file.
    pub file: RunFile,
    /// The symbol's name (the first of the names an address has).
    pub symbol: String,
    /// The file offset of its first instruction.
    pub file_offset: u64,
}

/// `module`'s file, then what it links (breadth first), then with `pid`
/// the other code files the process maps, each file once.
pub fn run_files(module: &Module, pid: Option<u32>, ld_library_path: Option<&str>) -> Vec<RunFile> {
    let root = root_of(module);
    let mut out = vec![RunFile {
        path: module.path.clone(),
        open_path: module.open_path.clone(),
        id: (module.dev, module.inode),
    }];
    let mut seen: HashSet<(u64, u64)> = HashSet::from([(module.dev, module.inode)]);
    let mut queue = VecDeque::from([module.clone()]);
    // The loader reuses a library already loaded under the name needed
    // (the fixture's libc for the system's libz too), as here.
    let mut loaded: HashSet<String> = HashSet::new();
    while let Some(from) = queue.pop_front() {
        let origin = from.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let steps = libsearch::search_order(&from.dynamic, &origin, ld_library_path);
        for name in &from.dynamic.needed {
            if !loaded.insert(name.clone()) {
                continue;
            }
            if out.len() >= MAX_FILES {
                return out;
            }
            let Some(path) = libsearch::find(name, &steps, &root) else {
                continue;
            };
            let open_path = root.join(path.strip_prefix("/").unwrap_or(&path));
            let Ok(lib) = Module::open(&path, &open_path) else {
                continue;
            };
            if seen.insert((lib.dev, lib.inode)) {
                out.push(RunFile {
                    path,
                    open_path,
                    id: (lib.dev, lib.inode),
                });
                queue.push_back(lib);
            }
        }
    }
    if let Some(pid) = pid {
        out.extend(mapped_files(pid, &mut seen));
    }
    out
}

/// The filesystem root `module` was opened under (`/proc/PID/root` for a
/// process in another mount namespace, `/` otherwise).
fn root_of(module: &Module) -> PathBuf {
    let open = module.open_path.to_string_lossy();
    let path = module.path.to_string_lossy();
    match open.strip_suffix(path.as_ref()) {
        Some(root) if !root.is_empty() && module.open_path != module.path => PathBuf::from(root),
        _ => PathBuf::from("/"),
    }
}

/// The code files process `pid` maps that `seen` does not have yet.
fn mapped_files(pid: u32, seen: &mut HashSet<(u64, u64)>) -> Vec<RunFile> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|t| super::proc::parse_maps(&t))
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in maps.iter().filter(|m| m.executable && m.is_file()) {
        let Some(path) = m.path.as_deref() else {
            continue;
        };
        let path = PathBuf::from(path);
        let open_path = super::proc::path_in_root(pid, &path);
        let Ok(meta) = std::fs::metadata(&open_path) else {
            continue;
        };
        let id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        if seen.insert(id) {
            out.push(RunFile {
                path,
                open_path,
                id,
            });
        }
    }
    out
}

/// Whether `file` is the one a D module field or `.library("NAME")`
/// names: its path, its base name, or its base name's stem before `.so`
/// (`libc` for `libc.so.6`); `*` matches any run of characters.
pub fn names_file(name: &str, file: &RunFile) -> bool {
    let base = file
        .path
        .file_name()
        .map_or_else(String::new, |b| b.to_string_lossy().into_owned());
    if name.contains('/') {
        return Path::new(name) == file.path;
    }
    pytap_script::check::glob(name, &base)
        || base
            .split_once(".so")
            .is_some_and(|(stem, _)| pytap_script::check::glob(name, stem))
}

/// The functions of `file` whose names `pattern` matches (`*` any run of
/// characters), one site per address (the first name found for it).
/// An unreadable file has none.
pub fn find_in(file: &RunFile, pattern: &str) -> Vec<FunctionSite> {
    let Ok(f) = File::open(&file.open_path) else {
        return Vec::new();
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return Vec::new();
    };
    let reader = FileRef::new(f, len);
    let Ok(image) = ElfImage::parse(&reader) else {
        return Vec::new();
    };
    let mut offsets = HashSet::new();
    let mut out = Vec::new();
    for sym in image.function_symbols() {
        if !pytap_script::check::glob(pattern, &sym.name) {
            continue;
        }
        let Some(file_offset) = image.file_offset(sym.address, Some(true)) else {
            continue;
        };
        if offsets.insert(file_offset) {
            out.push(FunctionSite {
                file: file.clone(),
                symbol: sym.name,
                file_offset,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> RunFile {
        RunFile {
            path: path.into(),
            open_path: path.into(),
            id: (0, 0),
        }
    }

    #[test]
    fn files_are_named_by_path_base_name_or_stem() {
        let libc = file("/lib/x86_64-linux-gnu/libc.so.6");
        assert!(names_file("libc.so.6", &libc));
        assert!(names_file("libc", &libc));
        assert!(names_file("libc.so*", &libc));
        assert!(names_file("/lib/x86_64-linux-gnu/libc.so.6", &libc));
        assert!(!names_file("/usr/lib/libc.so.6", &libc));
        assert!(!names_file("libm.so.6", &libc));
        assert!(!names_file("lib", &libc));
        assert!(names_file("python3.13", &file("/usr/bin/python3.13")));
    }

    #[test]
    fn a_symbol_is_found_at_its_file_offset() {
        // pytap's own test binary defines this function.
        let me = std::env::current_exe().unwrap();
        let f = file(me.to_str().unwrap());
        let found = find_in(&f, "main");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(find_in(&f, "no_such_function_anywhere").is_empty());
    }
}
