//! Maps against the real kernel: every map type, element round trips,
//! per-CPU value layout, batch drain, freeze, and buffer-size checks.

mod common;

use std::collections::BTreeSet;
use std::io::ErrorKind;

use pytap_sys::bpf::{BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, Map, MapType};
use pytap_sys::possible_cpus;

fn u32k(k: u32) -> [u8; 4] {
    k.to_ne_bytes()
}

#[test]
fn every_map_type_can_be_created() {
    let page = pytap_sys::page_size() as u32;
    let cases = [
        (MapType::Hash, 8, 8, 16, 0),
        (MapType::Hash, 8, 8, 16, BPF_F_NO_PREALLOC),
        (MapType::Array, 4, 24, 4, 0),
        (MapType::Array, 4, 64, 1, BPF_F_RDONLY_PROG),
        (MapType::PercpuHash, 8, 8, 16, 0),
        (MapType::PercpuArray, 4, 12, 2, 0),
        (MapType::LruHash, 16, 8, 32, 0),
        (MapType::LruPercpuHash, 4, 4, 32, 0),
        (MapType::RingBuf, 0, 0, page * 4, 0),
    ];
    let cpus = possible_cpus().unwrap();
    for (t, k, v, n, flags) in cases {
        let m = Map::create(t, k, v, n, flags, "pytap-test:map")
            .unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_eq!(m.map_type(), t);
        assert_eq!((m.key_size(), m.value_size(), m.max_entries()), (k, v, n));
        assert!(m.raw_fd() >= 0);
        assert!(common::is_cloexec(m.raw_fd()), "{t:?} fd not CLOEXEC");
        let expect = if t.is_per_cpu() {
            (v as usize).next_multiple_of(8) * cpus
        } else {
            v as usize
        };
        assert_eq!(m.value_buffer_len(), expect, "{t:?}");
    }
}

#[test]
fn create_errors_carry_the_errno() {
    // A hash map needs a non-zero key size.
    let e = Map::create(MapType::Hash, 0, 8, 16, 0, "bad").unwrap_err();
    assert_eq!(e.call, "BPF_MAP_CREATE");
    assert_eq!(e.errno(), Some(libc_einval()));
    assert!(e.to_string().starts_with("BPF_MAP_CREATE: "), "{e}");
    // A ring buffer size must be a power of two.
    let e = Map::create(MapType::RingBuf, 0, 0, 3 * 4096, 0, "bad").unwrap_err();
    assert_eq!(e.errno(), Some(libc_einval()));
}

fn libc_einval() -> i32 {
    22
}

#[test]
fn hash_round_trip_and_iteration() {
    let m = Map::create(MapType::Hash, 8, 16, 64, 0, "rt").unwrap();
    let mut v = [0u8; 16];
    assert!(!m.lookup(&7u64.to_ne_bytes(), &mut v).unwrap());
    for k in 1u64..=3 {
        let mut val = [0u8; 16];
        val[..8].copy_from_slice(&(k * 100).to_ne_bytes());
        val[8..].copy_from_slice(&(k * 1000).to_ne_bytes());
        m.update(&k.to_ne_bytes(), &val, 0).unwrap();
    }
    // BPF_NOEXIST (1) on an existing key: EEXIST.
    let e = m.update(&1u64.to_ne_bytes(), &[0; 16], 1).unwrap_err();
    assert_eq!(e.errno(), Some(17));
    assert!(m.lookup(&2u64.to_ne_bytes(), &mut v).unwrap());
    assert_eq!(u64::from_ne_bytes(v[..8].try_into().unwrap()), 200);
    assert_eq!(u64::from_ne_bytes(v[8..].try_into().unwrap()), 2000);

    let mut seen = BTreeSet::new();
    let mut cur: Option<[u8; 8]> = None;
    let mut next = [0u8; 8];
    while m.next_key(cur.as_ref().map(|k| &k[..]), &mut next).unwrap() {
        seen.insert(u64::from_ne_bytes(next));
        cur = Some(next);
    }
    assert_eq!(seen, BTreeSet::from([1, 2, 3]));

    assert!(m.delete(&2u64.to_ne_bytes()).unwrap());
    assert!(!m.delete(&2u64.to_ne_bytes()).unwrap());
    assert!(!m.lookup(&2u64.to_ne_bytes(), &mut v).unwrap());
}

#[test]
fn array_semantics() {
    let m = Map::create(MapType::Array, 4, 8, 4, 0, "arr").unwrap();
    let mut v = [0xffu8; 8];
    // Arrays are zero-filled and every index below max_entries exists.
    assert!(m.lookup(&u32k(3), &mut v).unwrap());
    assert_eq!(v, [0; 8]);
    m.update(&u32k(1), &42u64.to_ne_bytes(), 0).unwrap();
    assert!(m.lookup(&u32k(1), &mut v).unwrap());
    assert_eq!(u64::from_ne_bytes(v), 42);
    // Out of range: ENOENT on lookup, E2BIG on update.
    assert!(!m.lookup(&u32k(4), &mut v).unwrap());
    assert_eq!(m.update(&u32k(4), &[0; 8], 0).unwrap_err().errno(), Some(7));
    // Array elements cannot be deleted: EINVAL.
    assert_eq!(m.delete(&u32k(0)).unwrap_err().errno(), Some(22));
    let mut next = [0u8; 4];
    assert!(m.next_key(Some(&u32k(2)), &mut next).unwrap());
    assert_eq!(u32::from_ne_bytes(next), 3);
    assert!(!m.next_key(Some(&u32k(3)), &mut next).unwrap());
}

#[test]
fn per_cpu_values_have_one_slot_per_possible_cpu() {
    let cpus = possible_cpus().unwrap();
    for t in [
        MapType::PercpuArray,
        MapType::PercpuHash,
        MapType::LruPercpuHash,
    ] {
        let m = Map::create(t, 4, 12, 8, 0, "pcpu").unwrap();
        let stride = 16; // round_up(12, 8)
        assert_eq!(m.value_buffer_len(), stride * cpus);
        let mut val = vec![0u8; stride * cpus];
        for cpu in 0..cpus {
            let slot = &mut val[cpu * stride..cpu * stride + 12];
            slot[..4].copy_from_slice(&(cpu as u32 + 1).to_ne_bytes());
            slot[4..12].copy_from_slice(&(u64::MAX - cpu as u64).to_ne_bytes());
        }
        m.update(&u32k(5), &val, 0).unwrap();
        let mut back = vec![0xaau8; stride * cpus];
        assert!(m.lookup(&u32k(5), &mut back).unwrap());
        for cpu in 0..cpus {
            assert_eq!(
                back[cpu * stride..cpu * stride + 12],
                val[cpu * stride..cpu * stride + 12],
                "{t:?} cpu {cpu}"
            );
        }
        // A single value's worth of bytes is refused, not passed on.
        let e = m.lookup(&u32k(5), &mut [0u8; 12]).unwrap_err();
        assert_eq!(e.source.kind(), ErrorKind::InvalidInput);
    }
}

#[test]
fn lookup_and_delete_batch_drains_a_hash_map() {
    let m = Map::create(MapType::Hash, 4, 8, 1024, 0, "batch").unwrap();
    for k in 0u32..1000 {
        m.update(&u32k(k), &(u64::from(k) * 3).to_ne_bytes(), 0)
            .unwrap();
    }
    let count = 64u32;
    let mut keys = vec![0u8; 4 * count as usize];
    let mut values = vec![0u8; 8 * count as usize];
    let mut token_in = [0u8; 4];
    let mut token_out = [0u8; 4];
    let mut first = true;
    let mut seen = BTreeSet::new();
    let mut calls = 0;
    loop {
        let (got, more) = m
            .lookup_and_delete_batch(
                (!first).then_some(&token_in[..]),
                &mut token_out,
                &mut keys,
                &mut values,
                count,
            )
            .unwrap();
        calls += 1;
        assert!(got <= count);
        for i in 0..got as usize {
            let k = u32::from_ne_bytes(keys[i * 4..i * 4 + 4].try_into().unwrap());
            let v = u64::from_ne_bytes(values[i * 8..i * 8 + 8].try_into().unwrap());
            assert_eq!(v, u64::from(k) * 3);
            assert!(seen.insert(k), "key {k} returned twice");
        }
        if !more {
            break;
        }
        token_in = token_out;
        first = false;
        assert!(calls < 1000, "batch loop does not end");
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(seen.iter().copied().max(), Some(999));
    let mut next = [0u8; 4];
    assert!(!m.next_key(None, &mut next).unwrap(), "map not empty");
    // Once empty, a fresh walk ends at once.
    let (got, more) = m
        .lookup_and_delete_batch(None, &mut token_out, &mut keys, &mut values, count)
        .unwrap();
    assert_eq!((got, more), (0, false));
}

#[test]
fn batch_on_a_per_cpu_hash_uses_per_cpu_values() {
    let cpus = possible_cpus().unwrap();
    let m = Map::create(MapType::PercpuHash, 4, 8, 64, 0, "pbatch").unwrap();
    for k in 0u32..10 {
        let mut val = vec![0u8; 8 * cpus];
        for cpu in 0..cpus {
            val[cpu * 8..cpu * 8 + 8].copy_from_slice(&(u64::from(k) + cpu as u64).to_ne_bytes());
        }
        m.update(&u32k(k), &val, 0).unwrap();
    }
    let mut keys = vec![0u8; 4 * 32];
    let mut values = vec![0u8; 8 * cpus * 32];
    let mut token = [0u8; 4];
    let (got, more) = m
        .lookup_and_delete_batch(None, &mut token, &mut keys, &mut values, 32)
        .unwrap();
    assert_eq!((got, more), (10, false));
    for i in 0..10 {
        let k = u64::from(u32::from_ne_bytes(
            keys[i * 4..i * 4 + 4].try_into().unwrap(),
        ));
        for cpu in 0..cpus {
            let at = (i * cpus + cpu) * 8;
            assert_eq!(
                u64::from_ne_bytes(values[at..at + 8].try_into().unwrap()),
                k + cpu as u64
            );
        }
    }
    // Too small a values buffer for per-CPU values: refused up front.
    let mut small = vec![0u8; 8 * 32];
    let e = m
        .lookup_and_delete_batch(None, &mut token, &mut keys, &mut small, 32)
        .unwrap_err();
    assert_eq!(e.source.kind(), ErrorKind::InvalidInput);
}

#[test]
fn frozen_maps_refuse_syscall_updates() {
    let m = Map::create(MapType::Array, 4, 16, 1, BPF_F_RDONLY_PROG, "frozen").unwrap();
    m.update(&u32k(0), b"python3.11\0\0\0\0\0\0", 0).unwrap();
    m.freeze().unwrap();
    let e = m.update(&u32k(0), &[0; 16], 0).unwrap_err();
    assert_eq!(e.call, "BPF_MAP_UPDATE_ELEM");
    assert_eq!(e.errno(), Some(1), "EPERM expected: {e}");
    let mut v = [0u8; 16];
    assert!(m.lookup(&u32k(0), &mut v).unwrap());
    assert_eq!(&v, b"python3.11\0\0\0\0\0\0");
}

#[test]
fn wrong_buffer_sizes_are_invalid_input() {
    let m = Map::create(MapType::Hash, 8, 8, 8, 0, "sizes").unwrap();
    let invalid = |r: Result<(), pytap_sys::SysError>| {
        let e = r.unwrap_err();
        assert_eq!(e.source.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.errno(), None);
    };
    invalid(m.update(&[0; 4], &[0; 8], 0));
    invalid(m.update(&[0; 8], &[0; 7], 0));
    invalid(m.update(&[0; 8], &[0; 9], 0));
    invalid(m.lookup(&[0; 9], &mut [0; 8]).map(drop));
    invalid(m.lookup(&[0; 8], &mut [0; 4]).map(drop));
    invalid(m.delete(&[0; 1]).map(drop));
    invalid(m.next_key(None, &mut [0; 4]).map(drop));
    invalid(m.next_key(Some(&[0; 4]), &mut [0; 8]).map(drop));
    let (mut k, mut v, mut t) = ([0u8; 64], [0u8; 64], [0u8; 8]);
    // 8 entries need 64 key bytes and 64 value bytes; the token 8 bytes.
    invalid(
        m.lookup_and_delete_batch(None, &mut t, &mut k[..63], &mut v, 8)
            .map(drop),
    );
    invalid(
        m.lookup_and_delete_batch(None, &mut t, &mut k, &mut v[..63], 8)
            .map(drop),
    );
    invalid(
        m.lookup_and_delete_batch(None, &mut t[..4], &mut k, &mut v, 8)
            .map(drop),
    );
    invalid(
        m.lookup_and_delete_batch(Some(&[0; 2]), &mut t, &mut k, &mut v, 8)
            .map(drop),
    );
    invalid(
        m.lookup_and_delete_batch(None, &mut t, &mut k, &mut v, 0)
            .map(drop),
    );
    invalid(
        m.lookup_and_delete_batch(None, &mut t, &mut k, &mut v, u32::MAX)
            .map(drop),
    );
    // Nothing was inserted by any of the refused calls.
    assert!(!m.next_key(None, &mut [0; 8]).unwrap());
}
