//! [`Map`]: a BPF map fd and its shape, with element access that checks every
//! buffer against the shape before the kernel sees a pointer to it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::MapType;
use super::attr::{self, MapBatch, MapCreate, MapElem};
use crate::SysError;
use crate::sys;

/// A BPF map. Closing the fd (dropping the `Map`) frees it once no program
/// refers to it any more.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    /// `value_size` for plain maps; `round_up(value_size, 8) * possible_cpus`
    /// for per-CPU maps. Fixed at creation.
    value_buffer_len: usize,
}

/// The map name as the kernel accepts it: at most 15 bytes of
/// `[A-Za-z0-9_.]`, anything else replaced by `_`, then NUL padding.
fn map_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (slot, c) in out[..15].iter_mut().zip(name.chars()) {
        *slot = if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            c as u8
        } else {
            b'_'
        };
    }
    out
}

/// The user-space address of a buffer, for an attr field.
fn addr(buf: &[u8]) -> u64 {
    buf.as_ptr() as u64
}

/// The user-space address of a writable buffer, for an attr field.
fn addr_mut(buf: &mut [u8]) -> u64 {
    buf.as_mut_ptr() as u64
}

impl Map {
    /// `BPF_MAP_CREATE`. `name` is cosmetic (shown by `bpftool`): characters
    /// the kernel refuses become `_` and it is cut to 15 bytes.
    ///
    /// Ring buffers take `key_size = value_size = 0` and a power-of-two
    /// `max_entries` that is a multiple of the page size (the data size in
    /// bytes); the kernel answers `EINVAL` otherwise.
    pub fn create(
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
        name: &str,
    ) -> Result<Map, SysError> {
        const CALL: &str = "BPF_MAP_CREATE";
        let value_buffer_len = if map_type.is_per_cpu() {
            let cpus = crate::possible_cpus()?;
            usize::try_from(value_size)
                .ok()
                .map(|v| v.next_multiple_of(8))
                .and_then(|v| v.checked_mul(cpus))
                .ok_or_else(|| SysError::invalid_input(CALL, "per-CPU value size overflows"))?
        } else {
            value_size as usize
        };
        let mut a = MapCreate {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            map_flags: flags,
            map_name: map_name(name),
            ..MapCreate::default()
        };
        // SAFETY: MAP_CREATE reads no user pointers from this attr (no BTF,
        // no inner map); it returns a new map fd.
        let fd =
            unsafe { sys::bpf_fd(attr::MAP_CREATE, &mut a) }.map_err(|e| SysError::new(CALL, e))?;
        Ok(Map {
            fd,
            map_type,
            key_size,
            value_size,
            max_entries,
            value_buffer_len,
        })
    }

    /// The map fd, for `Program::to_bytes` relocations and the like.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The map type given at creation.
    pub fn map_type(&self) -> MapType {
        self.map_type
    }

    /// Key size in bytes.
    pub fn key_size(&self) -> u32 {
        self.key_size
    }

    /// Value size in bytes, as given at creation (per CPU for per-CPU maps).
    pub fn value_size(&self) -> u32 {
        self.value_size
    }

    /// Maximum number of entries (bytes of data for a ring buffer).
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// Bytes a lookup/update value buffer must have: `value_size` for plain
    /// maps, `round_up(value_size, 8) * possible_cpus()` for per-CPU maps,
    /// where CPU `i`'s value starts at `i * round_up(value_size, 8)`.
    pub fn value_buffer_len(&self) -> usize {
        self.value_buffer_len
    }

    fn check_key(&self, call: &'static str, key: &[u8]) -> Result<(), SysError> {
        if key.len() != self.key_size as usize {
            return Err(SysError::invalid_input(
                call,
                format!("key is {} bytes, map wants {}", key.len(), self.key_size),
            ));
        }
        Ok(())
    }

    fn check_value(&self, call: &'static str, value: &[u8]) -> Result<(), SysError> {
        if value.len() != self.value_buffer_len {
            return Err(SysError::invalid_input(
                call,
                format!(
                    "value buffer is {} bytes, map wants {}",
                    value.len(),
                    self.value_buffer_len
                ),
            ));
        }
        Ok(())
    }

    fn elem(&self) -> MapElem {
        MapElem {
            map_fd: self.fd.as_raw_fd() as u32,
            ..MapElem::default()
        }
    }

    /// `BPF_MAP_UPDATE_ELEM` with `flags` (`BPF_ANY` 0, `BPF_NOEXIST` 1,
    /// `BPF_EXIST` 2). `key` must be `key_size` bytes and `value`
    /// [`value_buffer_len`](Map::value_buffer_len) bytes.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), SysError> {
        const CALL: &str = "BPF_MAP_UPDATE_ELEM";
        self.check_key(CALL, key)?;
        self.check_value(CALL, value)?;
        let mut a = MapElem {
            key: addr(key),
            value: addr(value),
            flags,
            ..self.elem()
        };
        // SAFETY: the kernel reads key_size bytes at `key` and
        // value_buffer_len bytes (value_size, or round_up(value_size, 8) per
        // possible CPU) at `value`; both lengths were checked above.
        unsafe { sys::bpf(attr::MAP_UPDATE_ELEM, &mut a) }
            .map(drop)
            .map_err(|e| SysError::new(CALL, e))
    }

    /// `BPF_MAP_LOOKUP_ELEM` into `value`; `Ok(false)` when the key is absent
    /// (`ENOENT`).
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, SysError> {
        const CALL: &str = "BPF_MAP_LOOKUP_ELEM";
        self.check_key(CALL, key)?;
        self.check_value(CALL, value)?;
        let mut a = MapElem {
            key: addr(key),
            value: addr_mut(value),
            ..self.elem()
        };
        // SAFETY: the kernel reads key_size bytes at `key` and writes at most
        // value_buffer_len bytes at `value`, which is exactly that long and
        // exclusively borrowed.
        let r = unsafe { sys::bpf(attr::MAP_LOOKUP_ELEM, &mut a) };
        found(CALL, r)
    }

    /// `BPF_MAP_DELETE_ELEM`; `Ok(false)` when the key was absent.
    pub fn delete(&self, key: &[u8]) -> Result<bool, SysError> {
        const CALL: &str = "BPF_MAP_DELETE_ELEM";
        self.check_key(CALL, key)?;
        let mut a = MapElem {
            key: addr(key),
            ..self.elem()
        };
        // SAFETY: the kernel reads key_size bytes at `key` (checked).
        let r = unsafe { sys::bpf(attr::MAP_DELETE_ELEM, &mut a) };
        found(CALL, r)
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (the first key for `None`,
    /// or for a key no longer in the map) into `next`; `Ok(false)` at the end.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, SysError> {
        const CALL: &str = "BPF_MAP_GET_NEXT_KEY";
        if let Some(key) = key {
            self.check_key(CALL, key)?;
        }
        self.check_key(CALL, next)?;
        let mut a = MapElem {
            key: key.map_or(0, addr),
            value: addr_mut(next),
            ..self.elem()
        };
        // SAFETY: the kernel reads key_size bytes at `key` when non-NULL and
        // writes key_size bytes at `next`; both lengths were checked.
        let r = unsafe { sys::bpf(attr::MAP_GET_NEXT_KEY, &mut a) };
        found(CALL, r)
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`: moves up to `count` entries out of a
    /// hash-type map into `keys` (`count * key_size` bytes at least) and
    /// `values` (`count * value_buffer_len()` bytes at least).
    ///
    /// `in_batch` is `None` for the first call, then the `out_batch` of the
    /// previous call; both are opaque tokens of at least `max(key_size, 4)`
    /// bytes (hash maps use a `u32` bucket index). Returns the number of
    /// entries moved and whether more may remain; the kernel's `ENOENT`
    /// ("walked the whole map") becomes `more = false`. `ENOSPC` means a single
    /// hash bucket holds more than `count` entries: retry with a larger count.
    pub fn lookup_and_delete_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: u32,
    ) -> Result<(u32, bool), SysError> {
        const CALL: &str = "BPF_MAP_LOOKUP_AND_DELETE_BATCH";
        let token = (self.key_size as usize).max(4);
        if in_batch.is_some_and(|b| b.len() < token) || out_batch.len() < token {
            return Err(SysError::invalid_input(
                CALL,
                format!("batch tokens need at least {token} bytes"),
            ));
        }
        let n = count as usize;
        let keys_needed = n.checked_mul(self.key_size as usize);
        let values_needed = n.checked_mul(self.value_buffer_len);
        if keys_needed.is_none_or(|k| keys.len() < k)
            || values_needed.is_none_or(|v| values.len() < v)
        {
            return Err(SysError::invalid_input(
                CALL,
                format!(
                    "{count} entries need {} key bytes and {} value bytes",
                    n.saturating_mul(self.key_size as usize),
                    n.saturating_mul(self.value_buffer_len)
                ),
            ));
        }
        if count == 0 {
            return Err(SysError::invalid_input(CALL, "count must be at least 1"));
        }
        let mut a = MapBatch {
            in_batch: in_batch.map_or(0, addr),
            out_batch: addr_mut(out_batch),
            keys: addr_mut(keys),
            values: addr_mut(values),
            count,
            map_fd: self.fd.as_raw_fd() as u32,
            ..MapBatch::default()
        };
        // SAFETY: the kernel reads at most max(key_size, 4) bytes at
        // `in_batch`, writes that many at `out_batch`, and writes at most
        // `count` keys of key_size bytes and `count` values of
        // value_buffer_len bytes; every buffer was checked to be at least
        // that long, and the writable ones are exclusively borrowed.
        let r = unsafe { sys::bpf(attr::MAP_LOOKUP_AND_DELETE_BATCH, &mut a) };
        // The kernel writes the number of entries copied back into the attr,
        // also when it reports ENOENT for the last batch.
        let got = a.count.min(count);
        match r {
            Ok(_) => Ok((got, true)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok((got, false)),
            Err(e) => Err(SysError::new(CALL, e)),
        }
    }

    /// `BPF_MAP_FREEZE`: from now on the map is read-only for system calls
    /// (updates fail with `EPERM`); programs may still write unless the map
    /// was created with [`BPF_F_RDONLY_PROG`](super::BPF_F_RDONLY_PROG).
    pub fn freeze(&self) -> Result<(), SysError> {
        let mut a = self.elem();
        // SAFETY: MAP_FREEZE reads only `map_fd`; no pointers.
        unsafe { sys::bpf(attr::MAP_FREEZE, &mut a) }
            .map(drop)
            .map_err(|e| SysError::new("BPF_MAP_FREEZE", e))
    }

    /// A new fd for the same map (`F_DUPFD_CLOEXEC`).
    pub(crate) fn dup_fd(&self) -> Result<OwnedFd, SysError> {
        self.fd
            .try_clone()
            .map_err(|e| SysError::new("fcntl(F_DUPFD_CLOEXEC)", e))
    }
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `Ok(true)` on success, `Ok(false)` on `ENOENT`.
fn found(call: &'static str, r: io::Result<libc::c_long>) -> Result<bool, SysError> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(SysError::new(call, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::map_name;

    #[test]
    fn map_names_are_sanitised() {
        assert_eq!(&map_name("counts"), b"counts\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(&map_name("py:calls-per-func"), b"py_calls_per_fu\0");
        assert_eq!(&map_name(""), &[0u8; 16]);
    }
}
