//! Reading a live process through `/proc`.
//!
//! The parsers (`parse_maps`, `parse_nspid`) are pure and take text; the
//! functions that open `/proc/PID/...` are thin wrappers around them.
//! Files a process maps are opened through `/proc/PID/root/<path>`, so a
//! process in another mount namespace (a container) resolves to the same
//! inode it runs, and deleted files through `/proc/PID/map_files/`.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::TargetError;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `r`, `w`, `x` permissions.
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// Executable.
    pub executable: bool,
    /// File offset of `start`.
    pub offset: u64,
    /// Device, as `major:minor` in hex.
    pub dev: String,
    /// Inode; 0 for anonymous mappings.
    pub inode: u64,
    /// Path as the process sees it; `None` for anonymous mappings.
    pub path: Option<String>,
    /// The path ended in ` (deleted)`: the file was replaced or removed.
    pub deleted: bool,
}

impl Mapping {
    /// Whether the mapping is backed by a file (not `[heap]`, `[vdso]`, anonymous).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.as_deref().is_some_and(|p| p.starts_with('/'))
    }
}

/// Parses `/proc/PID/maps`. Lines that do not parse are skipped: the
/// format is the kernel's, and a partial answer beats none.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    // 00400000-0041f000 r--p 00000000 fe:01 1234   /usr/bin/python3.11
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let dev = fields.next()?.to_string();
    let inode = fields.next()?.parse().ok()?;
    let path = fields.next().map(str::trim_start).filter(|p| !p.is_empty());
    let (start, end) = range.split_once('-')?;
    let (path, deleted) = match path {
        Some(p) => match p.strip_suffix(" (deleted)") {
            Some(p) => (Some(p.to_string()), true),
            None => (Some(p.to_string()), false),
        },
        None => (None, false),
    };
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        readable: perms.first() == Some(&b'r'),
        writable: perms.get(1) == Some(&b'w'),
        executable: perms.get(2) == Some(&b'x'),
        offset,
        dev,
        inode,
        path,
        deleted,
    })
}

/// The `NSpid:` line of `/proc/PID/status`: the pid in each nested pid
/// namespace, outermost first. Empty if the line is missing.
pub fn parse_nspid(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A running process, as far as pytap needs to know it.
#[derive(Debug, Clone)]
pub struct Process {
    /// Host pid.
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// `/proc/PID/exe` as the process sees it (in its mount namespace).
    pub exe: Option<PathBuf>,
    /// Pid in the process's own pid namespace, when it differs from `pid`.
    pub ns_pid: Option<u32>,
    /// `/proc/PID/maps`.
    pub maps: Vec<Mapping>,
}

fn proc_path(pid: u32, rest: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{rest}"))
}

impl Process {
    /// Reads what pytap needs of a process, with errors a user can act on.
    pub fn open(pid: u32) -> Result<Process, TargetError> {
        if pid == 0 {
            return Err(TargetError::NoSuchProcess { pid });
        }
        let comm = match fs::read_to_string(proc_path(pid, "comm")) {
            Ok(c) => c.trim_end().to_string(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TargetError::NoSuchProcess { pid });
            }
            Err(e) => return Err(TargetError::proc_io(pid, "comm", e)),
        };
        let maps_text = fs::read_to_string(proc_path(pid, "maps")).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => TargetError::NoSuchProcess { pid },
            _ => TargetError::proc_io(pid, "maps", e),
        })?;
        let maps = parse_maps(&maps_text);
        if maps.is_empty() {
            // Kernel threads and zombies have no address space.
            return Err(TargetError::NoAddressSpace { pid, comm });
        }
        let exe = fs::read_link(proc_path(pid, "exe")).ok().map(|p| {
            let text = p.to_string_lossy();
            PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text))
        });
        let ns_pid = fs::read_to_string(proc_path(pid, "status"))
            .ok()
            .and_then(|s| parse_nspid(&s).last().copied())
            .filter(|&p| p != pid);
        Ok(Process {
            pid,
            comm,
            exe,
            ns_pid,
            maps,
        })
    }

    /// The distinct files mapped executable, in map order (the executable
    /// first), with the host path to open each one by.
    pub fn mapped_code_files(&self) -> Vec<MappedFile> {
        let mut seen = std::collections::HashSet::new();
        self.maps
            .iter()
            .filter(|m| m.executable && m.is_file())
            .filter(|m| seen.insert((m.dev.clone(), m.inode)))
            .filter_map(|m| {
                let path = m.path.clone()?;
                Some(MappedFile {
                    open_path: self.host_path_of(m),
                    path,
                    dev: m.dev.clone(),
                    inode: m.inode,
                    deleted: m.deleted,
                })
            })
            .collect()
    }

    /// A host path that opens the file behind a mapping: through the
    /// process's root (containers), or its `map_files` entry when deleted.
    fn host_path_of(&self, m: &Mapping) -> PathBuf {
        if m.deleted {
            proc_path(self.pid, &format!("map_files/{:x}-{:x}", m.start, m.end))
        } else {
            proc_path(self.pid, "root")
                .join(m.path.as_deref().unwrap_or("").trim_start_matches('/'))
        }
    }

    /// The address at which file offset `offset` of the file `(dev, inode)`
    /// is mapped in this process, if it is.
    pub fn address_of_file_offset(&self, dev: &str, inode: u64, offset: u64) -> Option<u64> {
        self.maps
            .iter()
            .filter(|m| m.inode == inode && m.dev == dev)
            .find(|m| offset >= m.offset && offset - m.offset < m.end - m.start)
            .map(|m| m.start + (offset - m.offset))
    }

    /// Reads process memory through `/proc/PID/mem`.
    pub fn read_memory(&self, address: u64, buf: &mut [u8]) -> io::Result<()> {
        let mem = fs::File::open(proc_path(self.pid, "mem"))?;
        mem.read_exact_at(buf, address)
    }

    /// Name used in messages: `1234 (python3.11)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.pid, self.comm)
    }
}

/// A file mapped into a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    /// Path as the process sees it.
    pub path: String,
    /// Host path to open it by.
    pub open_path: PathBuf,
    /// Device (`major:minor`, hex).
    pub dev: String,
    /// Inode.
    pub inode: u64,
    /// Whether the mapped file was deleted or replaced on disk.
    pub deleted: bool,
}

/// Whether `pid` names a live process (not a zombie).
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(proc_path(pid, "stat")) {
        // The state follows the parenthesised comm, which may contain spaces.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// One variable of a process's initial environment (`/proc/PID/environ`).
pub fn environ_var(pid: u32, name: &str) -> Option<String> {
    let environ = fs::read(proc_path(pid, "environ")).ok()?;
    parse_environ_var(&environ, name)
}

/// Finds `NAME=value` in NUL-separated environment bytes.
pub fn parse_environ_var(environ: &[u8], name: &str) -> Option<String> {
    environ.split(|&b| b == 0).find_map(|entry| {
        let rest = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

/// The effective uid of pytap itself (from `/proc/self/status`).
pub fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_uid(&status)
}

/// The effective uid from the `Uid:` line of `/proc/PID/status`.
pub fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every pid in `/proc`, ascending.
pub fn all_pids() -> io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// The thread group (process) id and parent process id from the `Tgid:`
/// and `PPid:` lines of `/proc/TID/status`.
pub fn parse_ids(status: &str) -> Option<(u32, u32)> {
    let field = |name: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .parse()
            .ok()
    };
    Some((field("Tgid:")?, field("PPid:")?))
}

/// The process a task id belongs to, and that process's parent: a thread
/// id gives its process (`/proc/TID` exists for threads too).
pub fn ids_of(tid: u32) -> Option<(u32, u32)> {
    parse_ids(&fs::read_to_string(proc_path(tid, "status")).ok()?)
}

/// The names (`comm`) of every thread of a process now, `(tid, comm)`.
pub fn thread_names(pid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = fs::read_dir(proc_path(pid, "task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
        Some((tid, comm.trim_end_matches('\n').to_string()))
    })
    .collect()
}

/// Every process descending from `root` now (children, grandchildren…).
pub fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| {
            let stat = fs::read_to_string(proc_path(pid, "stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// A thread of a process, as `/proc/PID/task/TID` shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its id (in pytap's pid namespace).
    pub tid: u32,
    /// Its id in the process's own pid namespace (what the process's
    /// `gettid()` returns).
    pub ns_tid: u32,
    /// `comm`.
    pub name: String,
    /// The scheduler state letter: `R` running or runnable, `S` sleeping,
    /// `D` waiting on I/O…
    pub state: char,
}

/// The threads of process `pid` now (those that exit while read are left out).
pub fn tasks(pid: u32) -> Vec<Task> {
    let mut out: Vec<Task> = thread_ids(pid)
        .into_iter()
        .filter_map(|tid| {
            let at = |f: &str| format!("/proc/{pid}/task/{tid}/{f}");
            let status = fs::read_to_string(at("status")).ok()?;
            let stat = fs::read_to_string(at("stat")).ok()?;
            let name = fs::read_to_string(at("comm")).ok()?;
            Some(Task {
                tid,
                ns_tid: parse_nspid(&status).last().copied().unwrap_or(tid),
                name: name.trim_end_matches('\n').to_string(),
                state: parse_stat_state(&stat)?,
            })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// The state letter of a `stat` line (the field after the parenthesised
/// `comm`, which may itself hold spaces and parentheses).
pub fn parse_stat_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// The thread ids of a process now.
pub fn thread_ids(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(proc_path(pid, "task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// `/proc/PID/root` joined with a path the process sees.
pub fn path_in_root(pid: u32, path: &Path) -> PathBuf {
    proc_path(pid, "root").join(path.strip_prefix("/").unwrap_or(path))
}

/// Whether process `pid` is stopped: by a signal (`T`) or for a tracer
/// (`t`), from `/proc/PID/stat`.
pub fn is_stopped(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(proc_path(pid, "stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // hold anything: look after the last `)`.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "T" || state == "t")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
00400000-0041f000 r--p 00000000 fe:01 1311066                            /usr/bin/python3.11
0041f000-006d3000 r-xp 0001f000 fe:01 1311066                            /usr/bin/python3.11
00946000-00a85000 rw-p 00545000 fe:01 1311066                            /usr/bin/python3.11
01c4e000-01d2b000 rw-p 00000000 00:00 0                                  [heap]
7f1c2a400000-7f1c2a6d1000 r-xp 00103000 fe:01 42 /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0 (deleted)
7f1c2a800000-7f1c2a801000 rw-p 00000000 00:00 0 
7ffd1b7e5000-7ffd1b7e7000 r-xp 00000000 00:00 0                          [vdso]
garbage line
";

    #[test]
    fn status_ids() {
        let status = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t100\nNgid:\t0\nPid:\t104\nPPid:\t7\n";
        assert_eq!(parse_ids(status), Some((100, 7)));
        assert_eq!(parse_ids("Tgid: x\nPPid: 1"), None);
    }

    #[test]
    fn maps_lines() {
        let maps = parse_maps(MAPS);
        assert_eq!(maps.len(), 7);
        assert_eq!(maps[1].start, 0x41f000);
        assert!(maps[1].executable && !maps[1].writable);
        assert_eq!(maps[1].offset, 0x1f000);
        assert_eq!(maps[1].inode, 1311066);
        assert_eq!(maps[2].path.as_deref(), Some("/usr/bin/python3.11"));
        assert!(!maps[3].is_file());
        assert!(maps[4].deleted);
        assert_eq!(
            maps[4].path.as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0")
        );
        assert_eq!(maps[5].path, None);
        assert!(!maps[6].is_file());
    }

    #[test]
    fn file_offsets_to_addresses() {
        let p = Process {
            pid: 7,
            comm: "python3.11".into(),
            exe: None,
            ns_pid: None,
            maps: parse_maps(MAPS),
        };
        // The semaphore of python3.11's function__return: file offset 0x683262.
        assert_eq!(
            p.address_of_file_offset("fe:01", 1311066, 0x683262),
            Some(0x946000 + 0x683262 - 0x545000)
        );
        assert_eq!(p.address_of_file_offset("fe:01", 1311066, 0x900000), None);
        let files = p.mapped_code_files();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].open_path,
            PathBuf::from("/proc/7/root/usr/bin/python3.11")
        );
        assert_eq!(
            files[1].open_path,
            PathBuf::from("/proc/7/map_files/7f1c2a400000-7f1c2a6d1000")
        );
    }

    #[test]
    fn environ() {
        let env = b"PATH=/bin\0LD_LIBRARY_PATH=/opt/lib\0LD=x\0";
        assert_eq!(
            parse_environ_var(env, "LD_LIBRARY_PATH").as_deref(),
            Some("/opt/lib")
        );
        assert_eq!(parse_environ_var(env, "LD").as_deref(), Some("x"));
        assert_eq!(parse_environ_var(env, "HOME"), None);
    }

    #[test]
    fn uid_line() {
        assert_eq!(parse_uid("Name:\tx\nUid:\t1000\t0\t0\t0\n"), Some(0));
        assert_eq!(parse_uid("Name:\tx\n"), None);
    }

    #[test]
    fn nspid() {
        assert_eq!(
            parse_nspid("Name:\tpython\nNSpid:\t25870\t1\n"),
            vec![25870, 1]
        );
        assert_eq!(parse_nspid("Name:\tx\n"), Vec::<u32>::new());
    }

    #[test]
    fn stat_states() {
        assert_eq!(parse_stat_state("42 (python3) S 1 42"), Some('S'));
        assert_eq!(parse_stat_state("42 (a) b) (c) R 1"), Some('R'));
        assert_eq!(parse_stat_state("42 (x"), None);
    }
}
