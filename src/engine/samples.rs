//! Decoding the stack sampler's records (pure): a header and its frames,
//! laid out as `pytap_abi::sample` says. A record shorter than its header
//! or than the frames it claims is refused, never read past.

use pytap_abi::sample::{NativeEntry, SampleFrame, SampleHeader, off};

/// A sample as the kernel wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSample {
    /// The header.
    pub header: SampleHeader,
    /// Its frames, innermost first.
    pub frames: Vec<SampleFrame>,
    /// The native stack, innermost first (empty unless native frames were
    /// asked for).
    pub native: Vec<NativeEntry>,
}

/// A record that is not a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sample record of {0} bytes does not hold what its header says")]
pub struct BadSample(pub usize);

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

/// Decodes one record.
pub fn decode(record: &[u8]) -> Result<RawSample, BadSample> {
    if record.len() < off::HEADER {
        return Err(BadSample(record.len()));
    }
    let header = SampleHeader {
        ts_ns: u64_at(record, off::TS),
        tstate: u64_at(record, off::TSTATE),
        pid: u32_at(record, off::PID),
        tid: u32_at(record, off::TID),
        cpu: u32_at(record, off::CPU),
        depth: u16_at(record, off::DEPTH),
        flags: u16_at(record, off::FLAGS),
        native: u16_at(record, off::NATIVE),
        pad: [0; 3],
    };
    let depth = usize::from(header.depth);
    let native_at = off::HEADER + depth * off::FRAME;
    let end = native_at + usize::from(header.native) * off::NATIVE_ENTRY;
    if record.len() < end {
        return Err(BadSample(record.len()));
    }
    let frames = record[off::HEADER..off::HEADER + depth * off::FRAME]
        .chunks_exact(off::FRAME)
        .map(|f| SampleFrame {
            code: u64_at(f, off::FRAME_CODE),
            offset: u32_at(f, off::FRAME_OFFSET) as i32,
            fingerprint: u32_at(f, off::FRAME_FINGERPRINT),
        })
        .collect();
    let native = record[native_at..end]
        .chunks_exact(off::NATIVE_ENTRY)
        .map(|e| NativeEntry {
            address: u64_at(e, 0),
            stack: u64_at(e, off::NATIVE_STACK),
        })
        .collect();
    Ok(RawSample {
        header,
        frames,
        native,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_decode_and_short_ones_are_refused() {
        let mut r = vec![0u8; off::HEADER + 2 * off::FRAME];
        r[off::PID..off::PID + 4].copy_from_slice(&7u32.to_le_bytes());
        r[off::DEPTH..off::DEPTH + 2].copy_from_slice(&2u16.to_le_bytes());
        let f1 = off::HEADER + off::FRAME;
        r[f1..f1 + 8].copy_from_slice(&0xabcdu64.to_le_bytes());
        r[f1 + off::FRAME_OFFSET..f1 + off::FRAME_OFFSET + 4]
            .copy_from_slice(&(-2i32).to_le_bytes());
        let s = decode(&r).unwrap();
        assert_eq!(s.header.pid, 7);
        assert_eq!(s.frames.len(), 2);
        assert_eq!((s.frames[1].code, s.frames[1].offset), (0xabcd, -2));
        assert!(decode(&r[..r.len() - 1]).is_err());
        // Native return addresses follow the frames.
        r[off::NATIVE..off::NATIVE + 2].copy_from_slice(&1u16.to_le_bytes());
        assert!(decode(&r).is_err(), "a native address it does not hold");
        r.extend_from_slice(&0x55aa_0000_1234u64.to_le_bytes());
        assert!(decode(&r).is_err(), "half an entry");
        r.extend_from_slice(&0x7ffc_0000_0010u64.to_le_bytes());
        assert_eq!(
            decode(&r).unwrap().native,
            [NativeEntry {
                address: 0x55aa_0000_1234,
                stack: 0x7ffc_0000_0010
            }]
        );
        assert!(decode(&r[..10]).is_err());
    }
}
