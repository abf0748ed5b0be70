use std::mem::{offset_of, size_of};

use super::*;

#[test]
fn layout_is_pinned() {
    // Changing these changes the ABI: the decoder and codegen follow
    // automatically, but recorded payloads in tests would not.
    assert_eq!(off::HEADER_SIZE, 24);
    assert_eq!(
        (off::KIND, off::CPU, off::SITE, off::FLAGS),
        (16, 18, 20, 22)
    );
    assert_eq!(off::FN_LINENO, 24);
    assert_eq!(off::FN_FILENAME_PTR, 40);
    assert_eq!(off::FN_FILENAME, 56);
    assert_eq!(off::FN_FUNCNAME, 56 + STR_CAP);
    assert_eq!(size_of::<FunctionEvent>(), 56 + 2 * STR_CAP);
    assert_eq!(size_of::<GcStartEvent>(), 32);
    assert_eq!(size_of::<GcDoneEvent>(), 32);
    assert_eq!(off::IMP_MODULE, 40);
    // Snapshot field offsets hard-coded above match the struct.
    assert_eq!(
        offset_of!(ObjectSnapshot<OBJ_BYTES>, type_name_ret),
        off::SNAP_TYPE_NAME_RET
    );
    assert_eq!(
        offset_of!(ObjectSnapshot<OBJ_BYTES>, data_ret),
        off::SNAP_DATA_RET
    );
    assert_eq!(
        offset_of!(ObjectSnapshot<OBJ_BYTES>, type_name),
        off::SNAP_TYPE_NAME
    );
    assert_eq!(offset_of!(ObjectSnapshot<OBJ_BYTES>, data), off::SNAP_DATA);
    assert_eq!(
        offset_of!(ObjectSnapshot<NESTED_OBJ_BYTES>, data),
        off::SNAP_DATA
    );
    // Every record keeps 8-byte alignment for the ring buffer.
    for (i, kind) in EventKind::ALL.into_iter().enumerate() {
        assert_eq!(kind.record_size() % 8, 0, "{kind:?}");
        assert_eq!(EventKind::from_u16(kind as u16), Some(kind));
        assert_eq!(kind as usize, i + 1);
    }
    assert!(size_of::<AuditEvent>() < 16 * 1024);
    assert_eq!(
        (off::TASK_OLD_TID, off::TASK_COMM, off::TASK_SIZE),
        (24, 32, 48)
    );
    for kind in [TASK_RENAME, TASK_EXEC, TASK_EXIT] {
        assert_eq!(
            EventKind::from_u16(kind),
            None,
            "task kinds are not marker kinds"
        );
    }
    assert_eq!(CallKey::SIZE, 24);
    assert_eq!(
        (
            offset_of!(CallKey, lineno),
            offset_of!(CallKey, filename_ptr),
            offset_of!(CallKey, funcname_ptr)
        ),
        (4, 8, 16)
    );
}
