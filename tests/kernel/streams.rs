//! The merge of the per-CPU rings (`src/engine/streams.rs`) on real
//! mmapable array maps, the regions written from here as a probe writes
//! them: records come out oldest first across regions, none while a
//! region that was busy since before the clock reading could still hold
//! an older one, all at the last drain, and a region in a state the
//! protocol cannot produce is counted, not trusted.

use pytap::engine::abi::ring;
use pytap::engine::streams::{KernelStreams, ring_layout};
use pytap_sys::bpf::{BPF_F_MMAPABLE, Map, MapType};
use pytap_sys::cpuring::CpuRings;
use pytap_sys::ringbuf::RingBuf;

use crate::harness::require_kernel;

const SIZE: usize = 64 << 10;

/// A region's bytes: head, busy count, tail, and 16-byte records (a
/// timestamp, then a tag) framed as the probes frame them.
fn region(records: &[(u64, u64)], busy: bool, tail: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; ring::region_bytes(SIZE)];
    let mut pos = 0usize;
    for (ts, tag) in records {
        let at = ring::DATA + pos;
        bytes[at..at + 4].copy_from_slice(&16u32.to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&ts.to_le_bytes());
        bytes[at + 16..at + 24].copy_from_slice(&tag.to_le_bytes());
        pos += ring::FRAME + 16;
    }
    bytes[ring::HEAD..ring::HEAD + 8].copy_from_slice(&(pos as u64).to_le_bytes());
    bytes[ring::BUSY..ring::BUSY + 8].copy_from_slice(&u64::from(busy).to_le_bytes());
    bytes[ring::TAIL..ring::TAIL + 8].copy_from_slice(&tail.to_le_bytes());
    bytes
}

fn drain(streams: &mut KernelStreams, last: bool) -> Vec<u64> {
    let mut tags = Vec::new();
    streams.consume(last, &mut |record| {
        tags.push(u64::from_le_bytes(record[8..16].try_into().unwrap()));
        true
    });
    tags
}

#[test]
fn per_cpu_rings_merge_by_timestamp_up_to_the_watermark() {
    require_kernel();
    let value = ring::region_bytes(SIZE) as u32;
    let rings = Map::create(MapType::Array, 4, value, 2, BPF_F_MMAPABLE, "t_rings").unwrap();
    let ring = Map::create(MapType::RingBuf, 0, 0, 1 << 16, 0, "t_ring").unwrap();
    let set = |cpu: u32, bytes: Vec<u8>| rings.update(&cpu.to_le_bytes(), &bytes, 0).unwrap();
    let cpu0 = [(10, 1), (30, 3), (50, 5)];
    let cpu1 = [(20, 2), (40, 4)];
    set(0, region(&cpu0, false, 0));
    set(1, region(&cpu1, true, 0));
    let cpu_rings = CpuRings::new(&rings, ring_layout(), SIZE).unwrap();
    let mut streams = KernelStreams::new(RingBuf::new(&ring).unwrap(), Some(cpu_rings));

    // CPU 1 was busy at the first look: a record older than anything
    // could still appear there, so nothing goes out.
    assert_eq!(drain(&mut streams, false), Vec::<u64>::new());
    // Free now: everything, oldest first across the two regions.
    set(1, region(&cpu1, false, 0));
    assert_eq!(drain(&mut streams, false), vec![1, 2, 3, 4, 5]);
    assert_eq!(streams.pending_bytes(), 0);

    // CPU 0 writes on while CPU 1 is busy: CPU 1's bound is the last
    // drain's clock, older than nothing here, so CPU 0's new record goes.
    let tail0 = (3 * (ring::FRAME + 16)) as u64;
    let mut more = cpu0.to_vec();
    more.push((60, 6));
    set(0, region(&more, false, tail0));
    let tail1 = (2 * (ring::FRAME + 16)) as u64;
    set(1, region(&cpu1, true, tail1));
    assert_eq!(drain(&mut streams, false), vec![6]);
    // At the end every visible record goes, busy or not.
    let mut late = cpu1.to_vec();
    late.push((70, 7));
    set(1, region(&late, true, tail1));
    assert_eq!(drain(&mut streams, true), vec![7]);
    assert_eq!(streams.corrupt(), 0);

    // Equal timestamps in two regions: both go (a tie must not stall).
    set(0, region(&[(80, 8)], false, 0));
    set(1, region(&[(80, 9)], false, 0));
    let mut tied = drain(&mut streams, false);
    tied.sort();
    assert_eq!(tied, vec![8, 9]);

    // A head behind the tail is no state a probe leaves: counted, skipped.
    set(0, region(&cpu0, false, 1 << 20));
    assert_eq!(drain(&mut streams, true), Vec::<u64>::new());
    assert_eq!(streams.corrupt(), 1);
}
