//! Decoding records as the probes write them: headers, task records,
//! strings and their states, audit arguments.

use super::*;
use crate::cpython::PyVersion;

#[test]
fn task_records() {
    let mut r = vec![0u8; off::TASK_SIZE];
    r[off::TS..off::TS + 8].copy_from_slice(&5u64.to_le_bytes());
    r[off::PID..off::PID + 4].copy_from_slice(&7u32.to_le_bytes());
    r[off::TID..off::TID + 4].copy_from_slice(&9u32.to_le_bytes());
    r[off::KIND..off::KIND + 2].copy_from_slice(&abi::TASK_RENAME.to_le_bytes());
    r[off::TASK_COMM_RET..off::TASK_COMM_RET + 4].copy_from_slice(&8i32.to_le_bytes());
    r[off::TASK_COMM..off::TASK_COMM + 7].copy_from_slice(b"worker\0");
    let t = task(&r).unwrap().unwrap();
    assert_eq!((t.ts_ns, t.pid, t.tid, t.kind), (5, 7, 9, TaskKind::Rename));
    assert_eq!(t.comm.as_deref(), Some("worker"));
    // A marker's record is not a task record; a short one is an error.
    r[off::KIND..off::KIND + 2].copy_from_slice(&1u16.to_le_bytes());
    assert!(task(&r).is_none());
    r[off::KIND..off::KIND + 2].copy_from_slice(&abi::TASK_EXEC.to_le_bytes());
    r[off::TASK_COMM_RET..off::TASK_COMM_RET + 4].copy_from_slice(&(-14i32).to_le_bytes());
    let t = task(&r).unwrap().unwrap();
    assert!(t.kind == TaskKind::Exec && t.comm.is_none());
    r[off::KIND..off::KIND + 2].copy_from_slice(&abi::TASK_EXIT.to_le_bytes());
    assert_eq!(task(&r).unwrap().unwrap().kind, TaskKind::Exit);
    assert!(task(&r[..off::TASK_SIZE - 1]).unwrap().is_err());
    assert!(task(&r[..4]).is_none());
}

fn record(kind: EventKind) -> Vec<u8> {
    let mut r = vec![0u8; kind.record_size()];
    r[off::TS..off::TS + 8].copy_from_slice(&123u64.to_le_bytes());
    r[off::PID..off::PID + 4].copy_from_slice(&7u32.to_le_bytes());
    r[off::TID..off::TID + 4].copy_from_slice(&8u32.to_le_bytes());
    r[off::KIND..off::KIND + 2].copy_from_slice(&(kind as u16).to_le_bytes());
    r[off::CPU..off::CPU + 2].copy_from_slice(&1u16.to_le_bytes());
    r[off::SITE..off::SITE + 2].copy_from_slice(&3u16.to_le_bytes());
    r
}

fn put_str(r: &mut [u8], at: usize, ret_at: usize, s: &[u8]) {
    r[at..at + s.len()].copy_from_slice(s);
    r[at + s.len()] = 0;
    r[ret_at..ret_at + 4].copy_from_slice(&((s.len() + 1) as i32).to_le_bytes());
}

#[test]
fn function_event() {
    let mut r = record(EventKind::FunctionEntry);
    put_str(&mut r, off::FN_FILENAME, off::FN_FILENAME_RET, b"/tmp/t.py");
    // Packed: the function name right after the file name and its NUL.
    put_str(&mut r, off::FN_FILENAME + 10, off::FN_FUNCNAME_RET, b"leaf");
    r[off::FN_LINENO..off::FN_LINENO + 4].copy_from_slice(&3i32.to_le_bytes());
    let e = decode(&r).unwrap();
    assert_eq!(
        e.header,
        Header {
            ts_ns: 123,
            pid: 7,
            tid: 8,
            kind: EventKind::FunctionEntry,
            cpu: 1,
            site: 3,
            flags: 0
        }
    );
    let Body::Function {
        filename,
        funcname,
        lineno,
    } = e.body
    else {
        panic!()
    };
    assert_eq!(
        (filename.bytes, funcname.bytes, lineno),
        (&b"/tmp/t.py"[..], &b"leaf"[..], 3)
    );
    assert_eq!(filename.state, StrState::Complete);
    // The record may be cut right after its packed content, not before.
    let packed = off::FN_FILENAME + 10 + 5;
    assert!(decode(&r[..packed]).is_ok());
    assert_eq!(
        decode(&r[..packed - 1]),
        Err(DecodeError::Short { len: packed - 1 })
    );
}

#[test]
fn unreadable_and_truncated_strings() {
    let mut r = record(EventKind::ImportDone);
    r[off::IMP_MODULE_RET..off::IMP_MODULE_RET + 4].copy_from_slice(&(-14i32).to_le_bytes());
    r[off::IMP_MODULE_PTR..off::IMP_MODULE_PTR + 8].copy_from_slice(&0x4242u64.to_le_bytes());
    r[off::IMP_FOUND] = 1;
    let Body::Import { module, found } = decode(&r).unwrap().body else {
        panic!()
    };
    assert_eq!(module.state, StrState::Unreadable(14));
    assert_eq!((module.at, found), (StrRef::Address(0x4242), Some(true)));

    let mut r = record(EventKind::ImportStart);
    let long = vec![b'x'; abi::STR_CAP - 1];
    put_str(&mut r, off::IMP_MODULE, off::IMP_MODULE_RET, &long);
    r[off::FLAGS] = abi::FLAG_TRUNCATED_0 as u8;
    let Body::Import { module, found } = decode(&r).unwrap().body else {
        panic!()
    };
    assert_eq!(
        (module.bytes.len(), module.state, found),
        (abi::STR_CAP - 1, StrState::Truncated, None)
    );
}

#[test]
fn bad_records_are_errors() {
    assert_eq!(decode(&[0; 3]), Err(DecodeError::Short { len: 3 }));
    let mut r = record(EventKind::GcStart);
    r[off::KIND] = 99;
    assert_eq!(decode(&r), Err(DecodeError::UnknownKind(99)));
    let r = record(EventKind::Audit);
    assert!(decode(&r[..100]).is_err());
    let mut gc = record(EventKind::GcDone);
    gc[off::GC_COLLECTED..off::GC_COLLECTED + 8].copy_from_slice(&(-1i64).to_le_bytes());
    assert_eq!(decode(&gc).unwrap().body, Body::GcDone { collected: -1 });
}

#[test]
fn audit_arguments() {
    let layout = ObjectLayout::for_version(PyVersion::new(3, 11, 2)).unwrap();
    let mut r = record(EventKind::Audit);
    put_str(&mut r, off::AU_EVENT, off::AU_EVENT_RET, b"x.y");
    // A tuple of 2: (7, (1,))
    r[off::AU_ROOT + 16..off::AU_ROOT + 24].copy_from_slice(&2u64.to_le_bytes());
    let mut item = |slot: usize, name: &[u8], data: &[u8], cap: usize, base: usize, size: usize| {
        let at = base + slot * size;
        r[at + off::SNAP_TYPE_NAME..at + off::SNAP_TYPE_NAME + name.len()].copy_from_slice(name);
        r[at + off::SNAP_TYPE_NAME_RET..at + off::SNAP_TYPE_NAME_RET + 4]
            .copy_from_slice(&(name.len() as i32 + 1).to_le_bytes());
        r[at + off::SNAP_DATA..at + off::SNAP_DATA + data.len()].copy_from_slice(data);
        r[at + off::SNAP_DATA_RET..at + off::SNAP_DATA_RET + 4]
            .copy_from_slice(&(cap as i32).to_le_bytes());
    };
    let mut seven = vec![0u8; abi::OBJ_BYTES];
    seven[16] = 1;
    seven[24] = 7;
    item(
        0,
        b"int",
        &seven,
        abi::OBJ_BYTES,
        off::AU_ITEMS,
        off::ITEM_SIZE,
    );
    let mut inner = vec![0u8; abi::OBJ_BYTES];
    inner[16] = 1;
    item(
        1,
        b"tuple",
        &inner,
        abi::OBJ_BYTES,
        off::AU_ITEMS,
        off::ITEM_SIZE,
    );
    let mut one = vec![0u8; abi::NESTED_OBJ_BYTES];
    one[16] = 1;
    one[24] = 1;
    item(
        abi::AUDIT_NESTED,
        b"int",
        &one,
        abi::NESTED_OBJ_BYTES,
        off::AU_NESTED,
        off::NESTED_SIZE,
    );
    let Body::Audit(audit) = decode(&r).unwrap().body else {
        panic!()
    };
    assert_eq!(audit.event.bytes, b"x.y");
    let args = audit.args(&layout).unwrap();
    let text: Vec<String> = args.values.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["7", "(1,)"]);
    assert_eq!(args.more, 0);
    // Unreadable tuple.
    r[off::AU_ROOT_RET..off::AU_ROOT_RET + 4].copy_from_slice(&(-14i32).to_le_bytes());
    let Body::Audit(audit) = decode(&r).unwrap().body else {
        panic!()
    };
    assert_eq!(audit.args(&layout), None);
}

#[test]
fn garbage_never_panics() {
    // A simple deterministic generator: every kind, random bytes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for kind in 1..=9u16 {
        for len in [0, 10, 24, 31, 32, 600, 1080, 9000] {
            let mut r: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if r.len() >= 18 {
                r[off::KIND..off::KIND + 2].copy_from_slice(&kind.to_le_bytes());
            }
            if let Ok(Event {
                body: Body::Audit(a),
                ..
            }) = decode(&r)
            {
                for minor in [9, 13, 14] {
                    let _ =
                        a.args(&ObjectLayout::for_version(PyVersion::new(3, minor, 0)).unwrap());
                }
            }
        }
    }
}
