use std::mem::{offset_of, size_of};

use super::*;

pub const TS: usize = offset_of!(EventHeader, ts_ns);
pub const PID: usize = offset_of!(EventHeader, pid);
pub const TID: usize = offset_of!(EventHeader, tid);
pub const KIND: usize = offset_of!(EventHeader, kind);
pub const CPU: usize = offset_of!(EventHeader, cpu);
pub const SITE: usize = offset_of!(EventHeader, site);
pub const FLAGS: usize = offset_of!(EventHeader, flags);
pub const HEADER_SIZE: usize = size_of::<EventHeader>();

pub const FN_LINENO: usize = offset_of!(FunctionEvent, lineno);
pub const FN_FILENAME_RET: usize = offset_of!(FunctionEvent, filename_ret);
pub const FN_FUNCNAME_RET: usize = offset_of!(FunctionEvent, funcname_ret);
pub const FN_FILENAME_PTR: usize = offset_of!(FunctionEvent, filename_ptr);
pub const SLOT_PID: usize = offset_of!(SentSlot, pid);
pub const SLOT_EPOCH: usize = offset_of!(SentSlot, epoch);
pub const SLOT_FILENAME_PTR: usize = offset_of!(SentSlot, filename_ptr);
pub const SLOT_FUNCNAME_PTR: usize = offset_of!(SentSlot, funcname_ptr);
pub const FN_FUNCNAME_PTR: usize = offset_of!(FunctionEvent, funcname_ptr);
pub const FN_FILENAME: usize = offset_of!(FunctionEvent, filename);
pub const FN_FUNCNAME: usize = offset_of!(FunctionEvent, funcname);

pub const GC_GENERATION: usize = offset_of!(GcStartEvent, generation);
pub const GC_COLLECTED: usize = offset_of!(GcDoneEvent, collected);

pub const IMP_MODULE_RET: usize = offset_of!(ImportEvent, module_ret);
pub const IMP_FOUND: usize = offset_of!(ImportEvent, found);
pub const IMP_MODULE_PTR: usize = offset_of!(ImportEvent, module_ptr);
pub const IMP_MODULE: usize = offset_of!(ImportEvent, module);

pub const TASK_OLD_TID: usize = offset_of!(TaskEvent, old_tid);
pub const TASK_COMM_RET: usize = offset_of!(TaskEvent, comm_ret);
pub const TASK_COMM: usize = offset_of!(TaskEvent, comm);
pub const TASK_SIZE: usize = size_of::<TaskEvent>();

pub const AU_EVENT_RET: usize = offset_of!(AuditEvent, event_ret);
pub const AU_ROOT_RET: usize = offset_of!(AuditEvent, root_ret);
pub const AU_EVENT_PTR: usize = offset_of!(AuditEvent, event_ptr);
pub const AU_ARGS_PTR: usize = offset_of!(AuditEvent, args_ptr);
pub const AU_ROOT: usize = offset_of!(AuditEvent, root);
pub const AU_ITEMS: usize = offset_of!(AuditEvent, items);
pub const AU_NESTED: usize = offset_of!(AuditEvent, nested);
pub const AU_EVENT: usize = offset_of!(AuditEvent, event);
pub const ITEM_SIZE: usize = size_of::<ObjectSnapshot<OBJ_BYTES>>();
pub const NESTED_SIZE: usize = size_of::<ObjectSnapshot<NESTED_OBJ_BYTES>>();

pub const SNAP_PTR: usize = 0;
pub const SNAP_TYPE_NAME_RET: usize = 8;
pub const SNAP_DATA_RET: usize = 12;
pub const SNAP_TYPE_NAME: usize = 16;
pub const SNAP_DATA: usize = 16 + TYPE_NAME;
