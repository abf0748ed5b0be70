//! The programs that tell pytap about the traced processes' threads: on
//! the kernel's `task_rename` and `sched_process_exec` tracepoints (raw
//! tracepoints: no tracefs needed), each writes a [`TaskEvent`] into the
//! session's ring buffer, in order with the markers' events of the same
//! thread. The run loop keeps each thread's name as of each event from
//! them (SystemTap's `execname()` at the event's time, not at pytap's
//! reading time), and follows a process that executes another interpreter.
//!
//! A third program, on `sched_process_exit`, reports each thread's end
//! (the tools let go of what they kept for it). When the plan sends names
//! once ([`super::named`]), the exec and exit programs also raise the
//! names epoch, and then they must be attached: the session refuses to
//! trace without them.
//!
//! Only processes in the `traced` map report, unless the session traces
//! every process (`--all`); a rename of another thread than the current
//! one (a write to `/proc/TID/comm` from elsewhere) is not reported.
//!
//! [`TaskEvent`]: crate::engine::abi::TaskEvent

use pytap_ebpf::{AluOp, BuildError, Helper, JmpOp, MapRef, Program, ProgramBuilder, Reg, Size};

use super::{MapKind, MapSpec, emit_count};
use crate::engine::abi::{self, off};

/// Name of the map of traced processes (tgid → 1).
pub const TRACED_MAP: &str = "traced";

/// The traced-process map: a process id (u32) per traced process. Not
/// preallocated (usually a handful of entries; creating 65536 up front
/// costs milliseconds of start-up).
pub fn traced_map_spec() -> MapSpec {
    MapSpec {
        name: TRACED_MAP.into(),
        kind: MapKind::HashNoPrealloc,
        key_size: 4,
        value_size: 1,
        max_entries: 65536,
    }
}

/// Which tracepoint a program is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskPoint {
    /// `task_rename(struct task_struct *task, const char *comm)`.
    Rename,
    /// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
    Exec,
    /// `sched_process_exit(struct task_struct *p)`: a thread ended (and,
    /// when names are sent once, a new names epoch, [`super::named`]).
    Exit,
}

impl TaskPoint {
    /// The kernel tracepoint's name.
    pub fn tracepoint(self) -> &'static str {
        match self {
            TaskPoint::Rename => "task_rename",
            TaskPoint::Exec => "sched_process_exec",
            TaskPoint::Exit => "sched_process_exit",
        }
    }

    /// The programs a session attaches.
    pub const ALL: [TaskPoint; 3] = [TaskPoint::Rename, TaskPoint::Exec, TaskPoint::Exit];
}

/// The maps a task program uses.
#[derive(Debug, Clone, Copy)]
pub struct TaskMaps {
    /// The ring buffer.
    pub events: MapRef,
    /// Per-CPU counters (a record with no room is counted lost).
    pub counters: MapRef,
    /// Traced processes; `None` to report every process.
    pub traced: Option<MapRef>,
    /// The names epoch ([`super::named`]), when the plan sends names
    /// once: an exec or the exit of any thread raises it.
    pub epoch: Option<MapRef>,
}

/// Builds the program for one tracepoint.
pub fn build(point: TaskPoint, maps: TaskMaps) -> Result<Program, BuildError> {
    let name = match point {
        TaskPoint::Rename => "pytap_rename",
        TaskPoint::Exec => "pytap_exec",
        TaskPoint::Exit => "pytap_exit",
    };
    let mut b = ProgramBuilder::new(name);
    let key = b.alloc_stack(4, 4)?;
    let out = b.new_label();
    let lost = b.new_label();
    b.mov64_reg(Reg::R6, Reg::R1);
    b.call(Helper::GetCurrentPidTgid);
    b.mov64_reg(Reg::R7, Reg::R0);
    if let Some(traced) = maps.traced {
        b.comment("only traced processes");
        b.mov64_reg(Reg::R1, Reg::R7);
        b.alu64_imm(AluOp::Rsh, Reg::R1, 32);
        b.stx(Size::W, Reg::FP, key.off, Reg::R1);
        b.ld_map_fd(Reg::R1, traced);
        b.mov64_reg(Reg::R2, Reg::FP)
            .add64_imm(Reg::R2, key.off.into());
        b.call(Helper::MapLookupElem);
        b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, out);
    }
    if let Some(epoch) = maps.epoch.filter(|_| point != TaskPoint::Rename) {
        b.comment("a new names epoch: pointers sent before prove nothing now");
        super::named::emit_new_epoch(&mut b, epoch, key);
    }
    if point == TaskPoint::Rename {
        b.comment("only the current thread renaming itself (args[0] == current)");
        b.call(Helper::GetCurrentTask);
        b.ldx(Size::DW, Reg::R1, Reg::R6, 0);
        b.jmp_reg(JmpOp::Jne, Reg::R0, Reg::R1, out);
    }
    b.ld_map_fd(Reg::R1, maps.events);
    b.mov64_imm(Reg::R2, off::TASK_SIZE as i32);
    b.mov64_imm(Reg::R3, 0);
    b.call(Helper::RingbufReserve);
    b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, lost);
    b.mov64_reg(Reg::R8, Reg::R0);
    b.call(Helper::KtimeGetNs);
    b.stx(Size::DW, Reg::R8, off::TS as i16, Reg::R0);
    b.stx(Size::W, Reg::R8, off::TID as i16, Reg::R7);
    b.alu64_imm(AluOp::Rsh, Reg::R7, 32);
    b.stx(Size::W, Reg::R8, off::PID as i16, Reg::R7);
    b.call(Helper::GetSmpProcessorId);
    b.stx(Size::H, Reg::R8, off::CPU as i16, Reg::R0);
    let kind = match point {
        TaskPoint::Rename => abi::TASK_RENAME,
        TaskPoint::Exec => abi::TASK_EXEC,
        TaskPoint::Exit => abi::TASK_EXIT,
    };
    b.st_imm(Size::H, Reg::R8, off::KIND as i16, i32::from(kind));
    b.st_imm(Size::H, Reg::R8, off::SITE as i16, 0);
    b.st_imm(Size::H, Reg::R8, off::FLAGS as i16, 0);
    b.mov64_reg(Reg::R1, Reg::R8)
        .add64_imm(Reg::R1, off::TASK_COMM as i32);
    b.mov64_imm(Reg::R2, 16);
    match point {
        TaskPoint::Rename => {
            b.comment("the new name, args[1] (not yet in task->comm)");
            b.st_imm(Size::W, Reg::R8, off::TASK_OLD_TID as i16, 0);
            b.ldx(Size::DW, Reg::R3, Reg::R6, 8);
            b.call(Helper::ProbeReadKernelStr);
        }
        TaskPoint::Exec => {
            b.comment("old_pid (args[1]); the name is already the new program's");
            b.ldx(Size::DW, Reg::R3, Reg::R6, 8);
            b.stx(Size::W, Reg::R8, off::TASK_OLD_TID as i16, Reg::R3);
            b.call(Helper::GetCurrentComm);
        }
        TaskPoint::Exit => {
            b.st_imm(Size::W, Reg::R8, off::TASK_OLD_TID as i16, 0);
            b.call(Helper::GetCurrentComm);
        }
    }
    b.stx(Size::W, Reg::R8, off::TASK_COMM_RET as i16, Reg::R0);
    b.mov64_reg(Reg::R1, Reg::R8);
    b.mov64_imm(Reg::R2, 0);
    b.call(Helper::RingbufSubmit);
    b.bind(out);
    b.mov64_imm(Reg::R0, 0).exit();
    b.bind(lost);
    b.comment("no room: count it lost");
    emit_count(&mut b, key, maps.counters, abi::COUNTER_LOST);
    b.ja(out);
    b.build()
}

/// The maps of a plan's task programs: its ring buffer, counters and, when
/// it has one, its traced-process map (`None` when it traces every process).
pub fn maps_of(table: &super::MapTable) -> Option<TaskMaps> {
    let position = |pred: &dyn Fn(&MapSpec) -> bool| {
        table
            .specs()
            .iter()
            .position(pred)
            .map(|i| MapRef(i as u32))
    };
    Some(TaskMaps {
        events: position(&|m| m.kind == MapKind::RingBuf)?,
        counters: position(&|m| m.name == crate::engine::session::COUNTERS_MAP)?,
        traced: position(&|m| m.name == TRACED_MAP),
        epoch: position(&|m| m.name == super::named::EPOCH_MAP),
    })
}

/// The task programs as `--dump-bpf` shows them.
pub fn dump(table: &super::MapTable) -> String {
    let Some(maps) = maps_of(table) else {
        return String::new();
    };
    let mut out = String::new();
    for point in TaskPoint::ALL {
        if let Ok(program) = build(point, maps) {
            out.push_str(&format!(
                "# program {} (raw tracepoint {}, {} instructions)\n",
                program.name,
                point.tracepoint(),
                program.len()
            ));
            out.push_str(&pytap_ebpf::disassemble_with(&program, &|m| table.name(m)));
            out.push('\n');
        }
    }
    out
}
