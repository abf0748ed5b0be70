//! The merge of the per-CPU rings (`src/engine/streams.rs`) on real
//! mmapable array maps, the regions written from here as a probe writes
//! them: records come out oldest first across regions, none while a
//! region taken by a writer could still publish an older one (its stored
//! clock reading says which), all at the last drain, and a region in a state the
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
fn region(records: &[(u64, u64)], busy: Option<u64>, tail: u64) -> Vec<u8> {
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
    bytes[ring::BUSY..ring::BUSY + 8].copy_from_slice(&u64::from(busy.is_some()).to_le_bytes());
    let pending = busy.unwrap_or_default();
    bytes[ring::PENDING..ring::PENDING + 8].copy_from_slice(&pending.to_le_bytes());
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
    // Timestamps from a millisecond ago: older than any drain's clock.
    let t0 = pytap_sys::clock::monotonic_ns().unwrap() as u64 - 1_000_000;
    let cpu0 = [(t0 + 10, 1), (t0 + 30, 3), (t0 + 50, 5)];
    let cpu1 = [(t0 + 20, 2), (t0 + 40, 4)];
    set(0, region(&cpu0, None, 0));
    set(1, region(&cpu1, Some(t0 + 35), 0));
    let cpu_rings = CpuRings::new(&rings, ring_layout(), SIZE).unwrap();
    let mut streams = KernelStreams::new(RingBuf::new(&ring).unwrap(), Some(cpu_rings));

    // CPU 1 is taken by a writer that read the clock at t0 + 35: what is
    // older goes, oldest first across the regions; the rest waits.
    assert_eq!(drain(&mut streams, false), vec![1, 2, 3]);
    // Free now: the rest, in order.
    let frame = (ring::FRAME + 16) as u64;
    set(1, region(&cpu1, None, frame));
    assert_eq!(drain(&mut streams, false), vec![4, 5]);
    assert_eq!(streams.pending_bytes(), 0);

    // A region free at the last drain and taken now holds nothing older
    // than that drain's clock: CPU 0's new record goes.
    let mut more = cpu0.to_vec();
    more.push((t0 + 60, 6));
    set(0, region(&more, None, 3 * frame));
    set(1, region(&cpu1, Some(t0), 2 * frame));
    assert_eq!(drain(&mut streams, false), vec![6]);
    // A record newer than the drain's clock waits for the next drain.
    let future = t0 + 60_000_000_000;
    more.push((future, 7));
    set(0, region(&more, None, 4 * frame));
    assert_eq!(drain(&mut streams, false), Vec::<u64>::new());
    // At the end every visible record goes, taken or not.
    let mut late = cpu1.to_vec();
    late.push((t0 + 70, 8));
    set(1, region(&late, Some(t0), 2 * frame));
    assert_eq!(drain(&mut streams, true), vec![8, 7]);
    assert_eq!(streams.corrupt(), 0);

    // Equal timestamps in two regions: both go (a tie must not stall).
    set(0, region(&[(t0 + 80, 11)], None, 0));
    set(1, region(&[(t0 + 80, 12)], None, 0));
    let mut tied = drain(&mut streams, false);
    tied.sort();
    assert_eq!(tied, vec![11, 12]);

    // A head behind the tail is no state a probe leaves: counted, skipped.
    set(0, region(&cpu0, None, 1 << 20));
    assert_eq!(drain(&mut streams, true), Vec::<u64>::new());
    assert_eq!(streams.corrupt(), 1);
}
