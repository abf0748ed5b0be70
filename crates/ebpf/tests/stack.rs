//! The stack-slot allocator and `zero_stack`.

use pytap_ebpf::{BuildError, Insn, MAX_STACK, ProgramBuilder, Reg, Size, StackSlot};

#[test]
fn slots_are_aligned_and_packed_downward() {
    let mut b = ProgramBuilder::new("t");
    let a = b.alloc_stack(4, 4).unwrap();
    assert_eq!(a, StackSlot { off: -4, size: 4 });
    // 4 + 8 = 12, rounded to 16 so the u64 is 8-aligned.
    let c = b.alloc_stack(8, 8).unwrap();
    assert_eq!(c, StackSlot { off: -16, size: 8 });
    let d = b.alloc_stack(1, 1).unwrap();
    assert_eq!(d.off, -17);
    // 17 + 2 = 19, rounded to 20.
    let e = b.alloc_stack(2, 2).unwrap();
    assert_eq!(e.off, -20);
    let f = b.alloc_stack(3, 8).unwrap();
    assert_eq!(f, StackSlot { off: -24, size: 3 });
    assert_eq!(b.stack_used(), 24);
    for s in [a, c, d, e, f] {
        assert!(s.off < 0);
        assert!(
            i32::from(s.off) + i32::from(s.size) <= 0,
            "slot must lie below r10"
        );
    }
}

#[test]
fn slots_never_overlap() {
    let mut b = ProgramBuilder::new("t");
    let mut taken = [false; 512];
    let reqs = [
        (3, 1),
        (8, 8),
        (5, 2),
        (16, 8),
        (1, 1),
        (4, 4),
        (7, 4),
        (2, 2),
    ];
    for (size, align) in reqs {
        let s = b.alloc_stack(size, align).unwrap();
        assert_eq!(i32::from(s.off).rem_euclid(i32::from(align)), 0);
        for byte in 0..size {
            let idx = usize::try_from(-i32::from(s.field(byte)) - 1).unwrap();
            assert!(!taken[idx], "byte {idx} handed out twice");
            taken[idx] = true;
        }
    }
}

#[test]
fn exactly_512_bytes_fit() {
    let mut b = ProgramBuilder::new("t");
    let s = b.alloc_stack(512, 8).unwrap();
    assert_eq!(s.off, -512);
    assert_eq!(b.stack_used(), MAX_STACK);
    assert_eq!(
        b.alloc_stack(1, 1),
        Err(BuildError::StackOverflow {
            requested: 1,
            used: 512
        })
    );
}

#[test]
fn byte_513_overflows() {
    let mut b = ProgramBuilder::new("t");
    assert_eq!(
        b.alloc_stack(513, 1),
        Err(BuildError::StackOverflow {
            requested: 513,
            used: 0
        })
    );
    b.alloc_stack(500, 1).unwrap();
    assert!(b.alloc_stack(13, 1).is_err());
    // A failed request leaves the allocator as it was.
    assert_eq!(b.stack_used(), 500);
    assert_eq!(b.alloc_stack(12, 1).unwrap().off, -512);
}

#[test]
fn alignment_padding_counts_toward_the_limit() {
    let mut b = ProgramBuilder::new("t");
    b.alloc_stack(505, 1).unwrap();
    // 505 + 4 = 509 fits, but aligning to 8 needs 512; 506 + 4 → 512 too.
    assert_eq!(b.alloc_stack(4, 8).unwrap().off, -512);
    let mut b = ProgramBuilder::new("t");
    b.alloc_stack(506, 1).unwrap();
    assert!(b.alloc_stack(7, 8).is_err());
    assert!(b.alloc_stack(u16::MAX, 8).is_err());
}

#[test]
fn bad_requests() {
    let mut b = ProgramBuilder::new("t");
    for (size, align) in [(0, 1), (4, 0), (4, 3), (4, 16)] {
        assert_eq!(
            b.alloc_stack(size, align),
            Err(BuildError::BadStackRequest { size, align })
        );
    }
    assert_eq!(b.stack_used(), 0);
}

#[test]
fn mark_and_release_reuse_space() {
    let mut b = ProgramBuilder::new("t");
    let keep = b.alloc_stack(8, 8).unwrap();
    let mark = b.stack_mark();
    let scratch = b.alloc_stack(64, 8).unwrap();
    assert_eq!(b.stack_used(), 72);
    b.stack_release(mark);
    assert_eq!(b.stack_used(), 8);
    let again = b.alloc_stack(64, 8).unwrap();
    assert_eq!(again, scratch);
    assert_ne!(again.off, keep.off);
    // The program still needs the deepest point reached.
    b.stack_release(mark);
    b.alloc_stack(16, 8).unwrap();
    assert_eq!(b.stack_peak(), 72);
    b.mov64_imm(Reg::R0, 0).exit();
    assert_eq!(b.build().unwrap().stack_depth(), 72);
}

#[test]
fn nested_marks_and_stale_release() {
    let mut b = ProgramBuilder::new("t");
    let outer = b.stack_mark();
    b.alloc_stack(8, 8).unwrap();
    let inner = b.stack_mark();
    b.alloc_stack(8, 8).unwrap();
    b.stack_release(outer);
    let live = b.alloc_stack(16, 8).unwrap();
    // `inner` was taken inside the released scope; releasing it now must
    // not shrink below `live`.
    b.stack_release(inner);
    assert_eq!(b.stack_used(), 16);
    let next = b.alloc_stack(8, 8).unwrap();
    assert!(next.off < live.off);
}

/// The (size, off) of each store `zero_stack` emits for `slot`.
fn zero_stores(slot: StackSlot) -> Vec<(Size, i16)> {
    let mut b = ProgramBuilder::new("t");
    b.zero_stack(slot).exit();
    let p = b.build().unwrap();
    let insns: &[Insn] = p.insns();
    insns[..insns.len() - 1]
        .iter()
        .map(|i| {
            // BPF_ST | size | BPF_MEM with dst r10 and imm 0.
            assert_eq!(i.code & 0x07, 0x02);
            assert_eq!(i.code & 0xe0, 0x60);
            assert_eq!((i.dst, i.src, i.imm), (10, 0, 0));
            let size = match i.code & 0x18 {
                0x18 => Size::DW,
                0x00 => Size::W,
                0x08 => Size::H,
                _ => Size::B,
            };
            (size, i.off)
        })
        .collect()
}

#[test]
fn zero_13_bytes_at_an_aligned_slot() {
    let mut b = ProgramBuilder::new("t");
    let s = b.alloc_stack(13, 8).unwrap();
    assert_eq!(s.off, -16);
    assert_eq!(
        zero_stores(s),
        [(Size::DW, -16), (Size::W, -8), (Size::B, -4)]
    );
}

#[test]
fn zero_stack_covers_exactly_the_slot() {
    let cases: [(StackSlot, &[(Size, i16)]); 6] = [
        (StackSlot { off: -8, size: 8 }, &[(Size::DW, -8)]),
        (
            StackSlot { off: -8, size: 7 },
            &[(Size::W, -8), (Size::H, -4), (Size::B, -2)],
        ),
        // Misaligned start: small stores until an 8-byte boundary.
        (
            StackSlot { off: -11, size: 11 },
            &[(Size::B, -11), (Size::H, -10), (Size::DW, -8)],
        ),
        (StackSlot { off: -3, size: 1 }, &[(Size::B, -3)]),
        (
            StackSlot { off: -40, size: 32 },
            &[
                (Size::DW, -40),
                (Size::DW, -32),
                (Size::DW, -24),
                (Size::DW, -16),
            ],
        ),
        (
            StackSlot { off: -6, size: 6 },
            &[(Size::H, -6), (Size::W, -4)],
        ),
    ];
    for (slot, want) in cases {
        let got = zero_stores(slot);
        assert_eq!(got, want, "slot {slot:?}");
        let covered: u16 = got.iter().map(|(s, _)| s.bytes()).sum();
        assert_eq!(covered, slot.size);
    }
}

/// Fewest naturally aligned 1/2/4/8-byte stores tiling `[start, start+size)`,
/// by dynamic programming over positions: the reference for `zero_stack`'s
/// greedy choice.
fn fewest_stores(start: i16, size: u16) -> usize {
    let start = i32::from(start);
    let n = usize::from(size);
    let mut best = vec![usize::MAX; n + 1];
    best[0] = 0;
    for done in 0..n {
        if best[done] == usize::MAX {
            continue;
        }
        let pos = start + i32::try_from(done).unwrap();
        for w in [1usize, 2, 4, 8] {
            let aligned = pos.rem_euclid(i32::try_from(w).unwrap()) == 0;
            if aligned && done + w <= n {
                best[done + w] = best[done + w].min(best[done] + 1);
            }
        }
    }
    best[n]
}

#[test]
fn zero_stack_of_every_small_slot_is_minimal() {
    for start in -64i16..0 {
        for size in 1..=u16::try_from(-start).unwrap() {
            let got = zero_stores(StackSlot { off: start, size });
            let covered: u16 = got.iter().map(|(s, _)| s.bytes()).sum();
            assert_eq!(covered, size);
            let mut pos = i32::from(start);
            for (s, off) in &got {
                assert_eq!(i32::from(*off), pos, "stores must be contiguous");
                assert_eq!(pos.rem_euclid(i32::from(s.bytes())), 0, "aligned");
                pos += i32::from(s.bytes());
            }
            assert_eq!(got.len(), fewest_stores(start, size), "{start} {size}");
        }
    }
}

#[test]
fn field_offsets() {
    let s = StackSlot { off: -24, size: 16 };
    assert_eq!(s.field(0), -24);
    assert_eq!(s.field(8), -16);
}

#[test]
fn one_mark_serves_a_loop_body() {
    let mut b = ProgramBuilder::new("t");
    let m = b.stack_mark();
    for _ in 0..100 {
        // Without the release, 100 × 64 bytes would overflow the frame.
        assert_eq!(b.alloc_stack(64, 8).unwrap().off, -64);
        b.stack_release(m);
    }
    assert_eq!(b.stack_used(), 0);
    assert_eq!(b.stack_peak(), 64);
}
