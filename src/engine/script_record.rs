//! Script records back into values: the decoder side of
//! [`crate::engine::abi::ScriptRecord`]. Never panics on any bytes (the
//! `event_decode` fuzz target feeds it too).

use std::mem::size_of;

use super::abi::{self, ScriptRecord, ScriptString, off};
use super::decode::DecodeError;

/// A string of a script record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptStr<'a> {
    /// The bytes read (without the NUL); empty when unreadable.
    pub bytes: &'a [u8],
    /// Its address in the traced process (0 for kernel-side bytes).
    pub ptr: u64,
    /// The read's result: length with the NUL, or -errno.
    pub ret: i32,
    /// It was longer than the kernel's buffer.
    pub truncated: bool,
}

/// A decoded script record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRecordView<'a> {
    /// `abi::SCRIPT_*`.
    pub kind: u16,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// CPU.
    pub cpu: u16,
    /// The marker site (attach cookie).
    pub site: u16,
    /// The output site, global or error site.
    pub id: u32,
    /// Its numbers.
    pub longs: Vec<i64>,
    /// Its strings.
    pub strings: Vec<ScriptStr<'a>>,
    /// Its key bytes (key records).
    pub key: &'a [u8],
}

fn at<const N: usize>(b: &[u8], i: usize) -> Option<[u8; N]> {
    b.get(i..i + N)?.try_into().ok()
}

/// Decodes a script record: `None` when the record is not one.
pub fn decode(record: &[u8]) -> Option<Result<ScriptRecordView<'_>, DecodeError>> {
    let kind = u16::from_le_bytes(at(record, off::KIND)?);
    if !matches!(
        kind,
        abi::SCRIPT_OUTPUT | abi::SCRIPT_KEY | abi::SCRIPT_ERROR
    ) {
        return None;
    }
    Some(decode_known(record, kind).ok_or(DecodeError::Short { len: record.len() }))
}

fn decode_known(record: &[u8], kind: u16) -> Option<ScriptRecordView<'_>> {
    let fixed = size_of::<ScriptRecord>();
    let u32_at = |i| at::<4>(record, i).map(u32::from_le_bytes);
    let u16_at = |i| at::<2>(record, i).map(u16::from_le_bytes);
    let id = u32_at(std::mem::offset_of!(ScriptRecord, id))?;
    let nlongs = usize::from(u16_at(std::mem::offset_of!(ScriptRecord, longs))?);
    let nstrs = usize::from(u16_at(std::mem::offset_of!(ScriptRecord, strings))?);
    let key_len = u32_at(std::mem::offset_of!(ScriptRecord, key_len))? as usize;
    let size = abi::script_fixed_size(nlongs, nstrs, key_len);
    if record.len() < size || key_len > 4096 {
        return None;
    }
    let longs = (0..nlongs)
        .map(|i| at::<8>(record, fixed + 8 * i).map(i64::from_le_bytes))
        .collect::<Option<Vec<_>>>()?;
    let metas = fixed + 8 * nlongs;
    let key_at = metas + size_of::<ScriptString>() * nstrs;
    let key = record.get(key_at..key_at + key_len)?;
    let mut pos = size;
    let mut strings = Vec::with_capacity(nstrs);
    for i in 0..nstrs {
        let m = metas + size_of::<ScriptString>() * i;
        let ptr = u64::from_le_bytes(at(record, m)?);
        let ret = i32::from_le_bytes(at(record, m + 8)?);
        let flags = u32::from_le_bytes(at(record, m + 12)?);
        let len = abi::packed_len(ret);
        let raw = record.get(pos..pos + len)?;
        pos += len;
        let bytes = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        strings.push(ScriptStr {
            bytes,
            ptr,
            ret,
            truncated: flags & abi::SCRIPT_STR_TRUNCATED != 0,
        });
    }
    Some(ScriptRecordView {
        kind,
        ts_ns: u64::from_le_bytes(at(record, off::TS)?),
        pid: u32::from_le_bytes(at(record, off::PID)?),
        tid: u32::from_le_bytes(at(record, off::TID)?),
        cpu: u16::from_le_bytes(at(record, off::CPU)?),
        site: u16::from_le_bytes(at(record, off::SITE)?),
        id,
        longs,
        strings,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(longs: &[i64], strs: &[(&[u8], u64)], key: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; abi::script_fixed_size(longs.len(), strs.len(), key.len())];
        r[off::KIND..off::KIND + 2].copy_from_slice(&abi::SCRIPT_OUTPUT.to_le_bytes());
        r[off::PID..off::PID + 4].copy_from_slice(&42u32.to_le_bytes());
        let f = size_of::<ScriptRecord>();
        r[f - 12..f - 10].copy_from_slice(&(longs.len() as u16).to_le_bytes());
        r[f - 10..f - 8].copy_from_slice(&(strs.len() as u16).to_le_bytes());
        r[f - 8..f - 4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        for (i, v) in longs.iter().enumerate() {
            r[f + 8 * i..f + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
        }
        let metas = f + 8 * longs.len();
        let key_at = metas + 16 * strs.len();
        r[key_at..key_at + key.len()].copy_from_slice(key);
        for (i, (s, ptr)) in strs.iter().enumerate() {
            let m = metas + 16 * i;
            r[m..m + 8].copy_from_slice(&ptr.to_le_bytes());
            r[m + 8..m + 12].copy_from_slice(&((s.len() + 1) as i32).to_le_bytes());
            r.extend_from_slice(s);
            r.push(0);
        }
        r
    }

    #[test]
    fn round_trip() {
        let r = record(&[7, -1], &[(b"abc", 0x1000), (b"", 0)], &[1, 2, 3]);
        let v = decode(&r).unwrap().unwrap();
        assert_eq!(v.pid, 42);
        assert_eq!(v.longs, [7, -1]);
        assert_eq!(v.strings[0].bytes, b"abc");
        assert_eq!(v.strings[0].ptr, 0x1000);
        assert_eq!(v.strings[1].bytes, b"");
        assert_eq!(v.key, [1, 2, 3]);
    }

    #[test]
    fn short_and_other_records() {
        let r = record(&[7], &[(b"abc", 1)], &[]);
        for cut in 0..r.len() {
            let _ = decode(&r[..cut]);
        }
        assert!(decode(&r[..r.len() - 2]).unwrap().is_err());
        let mut other = r.clone();
        other[off::KIND] = 1;
        assert!(decode(&other).is_none());
    }
}
