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

/// A decoded script record. Its numbers and strings are read from the
/// record as they are iterated ([`ScriptRecordView::longs`],
/// [`ScriptRecordView::strings`]): a script's `printf` sends one for every
/// event, and a vector each would be an allocation per record. [`decode`]
/// checked that every one lies in the record.
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
    /// The numbers' bytes (8 each).
    longs: &'a [u8],
    /// The strings' descriptions (a [`ScriptString`] each).
    metas: &'a [u8],
    /// The strings' bytes, packed.
    data: &'a [u8],
    /// Its key bytes (key records).
    pub key: &'a [u8],
}

impl<'a> ScriptRecordView<'a> {
    /// Its numbers, in order.
    pub fn longs(&self) -> impl Iterator<Item = i64> + 'a {
        self.longs
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
    }

    /// Its strings, in order.
    pub fn strings(&self) -> impl Iterator<Item = ScriptStr<'a>> + 'a {
        let mut pos = 0;
        let data = self.data;
        self.metas
            .chunks_exact(size_of::<ScriptString>())
            .map(move |m| {
                let ptr = u64::from_le_bytes(at(m, 0).unwrap_or_default());
                let ret = i32::from_le_bytes(at(m, 8).unwrap_or_default());
                let flags = u32::from_le_bytes(at(m, 12).unwrap_or_default());
                let len = abi::packed_len(ret);
                let raw = data.get(pos..pos + len).unwrap_or_default();
                pos += len;
                ScriptStr {
                    bytes: &raw[..memchr::memchr(0, raw).unwrap_or(raw.len())],
                    ptr,
                    ret,
                    truncated: flags & abi::SCRIPT_STR_TRUNCATED != 0,
                }
            })
    }
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
    let longs = record.get(fixed..fixed + 8 * nlongs)?;
    let metas_at = fixed + 8 * nlongs;
    let metas = record.get(metas_at..metas_at + size_of::<ScriptString>() * nstrs)?;
    let key_at = metas_at + size_of::<ScriptString>() * nstrs;
    let key = record.get(key_at..key_at + key_len)?;
    // Every string's bytes lie in the record (the iterator trusts it).
    let data = record.get(size..)?;
    let mut pos = 0;
    for m in metas.chunks_exact(size_of::<ScriptString>()) {
        let ret = i32::from_le_bytes(at(m, 8)?);
        pos += abi::packed_len(ret);
        if pos > data.len() {
            return None;
        }
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
        metas,
        data,
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
        assert_eq!(v.longs().collect::<Vec<_>>(), [7, -1]);
        let strings: Vec<ScriptStr<'_>> = v.strings().collect();
        assert_eq!(strings[0].bytes, b"abc");
        assert_eq!(strings[0].ptr, 0x1000);
        assert_eq!(strings[1].bytes, b"");
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
