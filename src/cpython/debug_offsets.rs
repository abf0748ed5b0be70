//! `_Py_DebugOffsets`: the table CPython 3.13 and later keep at the start
//! of `_PyRuntime` so that debuggers and profilers need no per-build
//! offsets (PEP 768's `sys.remote_exec` and Tachyon are built on it).
//!
//! The table gives offsets, but its own layout changes with every minor
//! version (fields are inserted mid-section: 3.14 added `threads_main`
//! and the code-object generation, 3.15 a dozen thread-state fields), so
//! reading it takes a per-minor description of where each field is: the
//! word indices below, read from the tables of Debian's 3.13.5, 3.14.8 and
//! 3.15.0 builds and pyenv's 3.13.0, and held by tests to those files.
//!
//! The table is the target's memory, so it is untrusted input, as Tachyon
//! treats it: every offset pytap follows must lie inside the size the
//! table gives for its struct, and the structs must be of plausible sizes;
//! a table that fails is refused whole.

/// `_Py_Debug_Cookie`.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// Bytes of the table pytap reads (3.15's is 112 words before the
/// debugger support section ends).
pub const TABLE_BYTES: usize = 8 * 128;

/// A field of the table pytap reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `_PyRuntimeState.interpreters.head`.
    InterpretersHead,
    /// `PyInterpreterState.next`.
    InterpNext,
    /// `PyInterpreterState.threads.head`.
    ThreadsHead,
    /// `PyInterpreterState.threads.main` (3.14+).
    ThreadsMain,
    /// `PyInterpreterState._gil.locked`.
    GilLocked,
    /// `PyInterpreterState._gil.last_holder`.
    GilHolder,
    /// `PyInterpreterState._code_object_generation` (3.14+).
    CodeObjectGeneration,
    /// `PyThreadState.next`.
    ThreadNext,
    /// `PyThreadState.current_frame`.
    CurrentFrame,
    /// `PyThreadState.thread_id`.
    ThreadId,
    /// `PyThreadState.native_thread_id`.
    NativeThreadId,
    /// `_PyInterpreterFrame.previous`.
    FramePrevious,
    /// `_PyInterpreterFrame.f_executable`.
    FrameExecutable,
    /// `_PyInterpreterFrame.instr_ptr`.
    FrameInstrPtr,
    /// `_PyInterpreterFrame.owner`.
    FrameOwner,
    /// `_PyInterpreterFrame.localsplus`.
    FrameLocalsplus,
    /// `PyCodeObject.co_localsplusnames`.
    CodeLocalsplusNames,
    /// `PyCodeObject.co_localspluskinds`.
    CodeLocalsplusKinds,
    /// `PyCodeObject.co_filename`.
    CodeFilename,
    /// `PyCodeObject.co_name`.
    CodeName,
    /// `PyCodeObject.co_qualname`.
    CodeQualname,
    /// `PyCodeObject.co_linetable`.
    CodeLinetable,
    /// `PyCodeObject.co_firstlineno`.
    CodeFirstLine,
    /// `PyCodeObject.co_code_adaptive`.
    CodeAdaptive,
    /// `PyObject.ob_type`.
    ObjectType,
    /// `PyBytesObject.ob_size`.
    BytesSize,
    /// `PyBytesObject.ob_sval`.
    BytesData,
    /// `PyASCIIObject.state`.
    StrState,
    /// `PyASCIIObject.length`.
    StrLength,
    /// `sizeof(PyASCIIObject)`.
    StrAsciiSize,
    /// `PyThreadState.eval_breaker` (PEP 768's section, 3.14+).
    EvalBreaker,
    /// `PyThreadState.remote_debugger_support` (3.14+).
    RemoteDebuggerSupport,
    /// `PyInterpreterState.config.remote_debug` (3.14+).
    RemoteDebuggingEnabled,
    /// The pending-call flag in `_PyRemoteDebuggerSupport` (3.14+).
    DebuggerPendingCall,
    /// The script path buffer in `_PyRemoteDebuggerSupport` (3.14+).
    DebuggerScriptPath,
    /// That buffer's size (3.14+).
    DebuggerScriptPathSize,
}

/// The structs the table describes, each led by its `size` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Runtime,
    Interp,
    Thread,
    Frame,
    Code,
    Object,
    Bytes,
    Str,
    /// Values that are not offsets into one of the structs above.
    Free,
}

/// Where one minor version's table keeps its sections and fields.
struct TableLayout {
    /// The word index of each section's `size`.
    sections: [(Section, usize); 8],
    /// Field, word index, section it is an offset into.
    fields: &'static [(Field, usize, Section)],
}

use Field::*;
use Section::*;

const TABLE_3_13: TableLayout = TableLayout {
    sections: [
        (Runtime, 3),
        (Interp, 6),
        (Thread, 19),
        (Frame, 28),
        (Code, 34),
        (Object, 44),
        (Bytes, 64),
        (Str, 67),
    ],
    fields: &[
        (InterpretersHead, 5, Runtime),
        (InterpNext, 8, Interp),
        (ThreadsHead, 9, Interp),
        (GilLocked, 17, Interp),
        (GilHolder, 18, Interp),
        (ThreadNext, 21, Thread),
        (CurrentFrame, 23, Thread),
        (ThreadId, 24, Thread),
        (NativeThreadId, 25, Thread),
        (FramePrevious, 29, Frame),
        (FrameExecutable, 30, Frame),
        (FrameInstrPtr, 31, Frame),
        (FrameOwner, 33, Frame),
        (FrameLocalsplus, 32, Frame),
        (CodeLocalsplusNames, 41, Code),
        (CodeLocalsplusKinds, 42, Code),
        (CodeFilename, 35, Code),
        (CodeName, 36, Code),
        (CodeQualname, 37, Code),
        (CodeLinetable, 38, Code),
        (CodeFirstLine, 39, Code),
        (CodeAdaptive, 43, Code),
        (ObjectType, 45, Object),
        (BytesSize, 65, Bytes),
        (BytesData, 66, Bytes),
        (StrState, 68, Str),
        (StrLength, 69, Str),
        (StrAsciiSize, 70, Free),
    ],
};

/// 3.14 and 3.15 share the interpreter section; 3.15's thread state has
/// eight words more, and its type object four, so everything after moves.
const TABLE_3_14: TableLayout = TableLayout {
    sections: [
        (Runtime, 3),
        (Interp, 6),
        (Thread, 22),
        (Frame, 31),
        (Code, 39),
        (Object, 50),
        (Bytes, 74),
        (Str, 77),
    ],
    fields: &[
        (InterpretersHead, 5, Runtime),
        (InterpNext, 8, Interp),
        (ThreadsHead, 9, Interp),
        (ThreadsMain, 10, Interp),
        (GilLocked, 18, Interp),
        (GilHolder, 19, Interp),
        (CodeObjectGeneration, 20, Interp),
        (ThreadNext, 24, Thread),
        (CurrentFrame, 26, Thread),
        (ThreadId, 27, Thread),
        (NativeThreadId, 28, Thread),
        (FramePrevious, 32, Frame),
        (FrameExecutable, 33, Frame),
        (FrameInstrPtr, 34, Frame),
        (FrameOwner, 36, Frame),
        (FrameLocalsplus, 35, Frame),
        (CodeLocalsplusNames, 46, Code),
        (CodeLocalsplusKinds, 47, Code),
        (CodeFilename, 40, Code),
        (CodeName, 41, Code),
        (CodeQualname, 42, Code),
        (CodeLinetable, 43, Code),
        (CodeFirstLine, 44, Code),
        (CodeAdaptive, 48, Code),
        (ObjectType, 51, Object),
        (BytesSize, 75, Bytes),
        (BytesData, 76, Bytes),
        (StrState, 78, Str),
        (StrLength, 79, Str),
        (StrAsciiSize, 80, Free),
        (EvalBreaker, 89, Thread),
        (RemoteDebuggerSupport, 90, Thread),
        (RemoteDebuggingEnabled, 91, Interp),
        (DebuggerPendingCall, 92, Free),
        (DebuggerScriptPath, 93, Free),
        (DebuggerScriptPathSize, 94, Free),
    ],
};

const TABLE_3_15: TableLayout = TableLayout {
    sections: [
        (Runtime, 3),
        (Interp, 6),
        (Thread, 22),
        (Frame, 39),
        (Code, 47),
        (Object, 58),
        (Bytes, 86),
        (Str, 89),
    ],
    fields: &[
        (InterpretersHead, 5, Runtime),
        (InterpNext, 8, Interp),
        (ThreadsHead, 9, Interp),
        (ThreadsMain, 10, Interp),
        (GilLocked, 18, Interp),
        (GilHolder, 19, Interp),
        (CodeObjectGeneration, 20, Interp),
        (ThreadNext, 24, Thread),
        (CurrentFrame, 26, Thread),
        (ThreadId, 30, Thread),
        (NativeThreadId, 31, Thread),
        (FramePrevious, 40, Frame),
        (FrameExecutable, 41, Frame),
        (FrameInstrPtr, 42, Frame),
        (FrameOwner, 44, Frame),
        (FrameLocalsplus, 43, Frame),
        (CodeLocalsplusNames, 54, Code),
        (CodeLocalsplusKinds, 55, Code),
        (CodeFilename, 48, Code),
        (CodeName, 49, Code),
        (CodeQualname, 50, Code),
        (CodeLinetable, 51, Code),
        (CodeFirstLine, 52, Code),
        (CodeAdaptive, 56, Code),
        (ObjectType, 59, Object),
        (BytesSize, 87, Bytes),
        (BytesData, 88, Bytes),
        (StrState, 90, Str),
        (StrLength, 91, Str),
        (StrAsciiSize, 92, Free),
        (EvalBreaker, 105, Thread),
        (RemoteDebuggerSupport, 106, Thread),
        (RemoteDebuggingEnabled, 107, Interp),
        (DebuggerPendingCall, 108, Free),
        (DebuggerScriptPath, 109, Free),
        (DebuggerScriptPathSize, 110, Free),
    ],
};

fn table_layout(minor: u8) -> Option<&'static TableLayout> {
    match minor {
        13 => Some(&TABLE_3_13),
        14 => Some(&TABLE_3_14),
        15 => Some(&TABLE_3_15),
        _ => None,
    }
}

/// Why a table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebugOffsetsError {
    /// No cookie: not a 3.13+ runtime, or not `_PyRuntime`.
    #[error("no remote debugging table (_Py_DebugOffsets) at the start of _PyRuntime")]
    Missing,
    /// A version whose table layout pytap does not know.
    #[error("CPython {major}.{minor}'s remote debugging table is not one pytap knows")]
    Version {
        /// Major version.
        major: u64,
        /// Minor version.
        minor: u64,
    },
    /// An offset outside its struct, or a struct of no plausible size.
    #[error("the remote debugging table does not make sense ({0})")]
    Nonsense(&'static str),
}

/// A validated table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugOffsets {
    /// `PY_VERSION_HEX`.
    pub version: u64,
    /// A free-threaded build.
    pub free_threaded: bool,
    words: Vec<u64>,
    minor: u8,
}

impl DebugOffsets {
    /// Reads and checks the table at the start of `_PyRuntime` (`bytes`,
    /// [`TABLE_BYTES`] of it).
    pub fn parse(bytes: &[u8]) -> Result<DebugOffsets, DebugOffsetsError> {
        if bytes.len() < TABLE_BYTES || &bytes[..8] != COOKIE {
            return Err(DebugOffsetsError::Missing);
        }
        let words: Vec<u64> = bytes[..TABLE_BYTES]
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .collect();
        let version = words[1];
        let (major, minor) = (version >> 24, (version >> 16) & 0xff);
        let layout = table_layout(minor as u8)
            .filter(|_| major == 3)
            .ok_or(DebugOffsetsError::Version { major, minor })?;
        let size_of = |section: Section| {
            layout
                .sections
                .iter()
                .find(|(s, _)| *s == section)
                .map(|(_, at)| words[*at])
        };
        for (section, at) in layout.sections {
            // No struct CPython has is smaller than a PyObject or larger than
            // a megabyte (the runtime state is a few hundred KiB).
            if !(16..=1 << 20).contains(&words[at]) {
                return Err(DebugOffsetsError::Nonsense(section_name(section)));
            }
        }
        for &(field, at, section) in layout.fields {
            if let Some(size) = size_of(section)
                && words[at].saturating_add(1) > size
            {
                return Err(DebugOffsetsError::Nonsense(field_name(field)));
            }
        }
        Ok(DebugOffsets {
            version,
            free_threaded: words[2] != 0,
            words,
            minor: minor as u8,
        })
    }

    /// The minor version the table is of.
    pub fn minor(&self) -> u8 {
        self.minor
    }

    /// A field's value, `None` when this version's table has no such field.
    pub fn get(&self, field: Field) -> Option<u64> {
        let layout = table_layout(self.minor)?;
        layout
            .fields
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|&(_, at, _)| self.words[at])
    }

    /// `sizeof(PyThreadState)`.
    pub fn thread_state_size(&self) -> u64 {
        let layout = table_layout(self.minor).expect("parsed tables have a layout");
        let at = layout
            .sections
            .iter()
            .find(|(s, _)| *s == Thread)
            .map(|(_, at)| *at)
            .expect("every layout has a thread section");
        self.words[at]
    }
}

fn section_name(section: Section) -> &'static str {
    match section {
        Runtime => "runtime state size",
        Interp => "interpreter state size",
        Thread => "thread state size",
        Frame => "frame size",
        Code => "code object size",
        Object => "object size",
        Bytes => "bytes object size",
        Str => "str object size",
        Free => "a value",
    }
}

fn field_name(field: Field) -> &'static str {
    match field {
        InterpretersHead => "interpreters head",
        InterpNext => "interpreter next",
        ThreadsHead => "threads head",
        ThreadsMain => "main thread",
        GilLocked | GilHolder => "GIL state",
        CodeObjectGeneration => "code object generation",
        ThreadNext | CurrentFrame | ThreadId | NativeThreadId => "thread state field",
        FramePrevious | FrameExecutable | FrameInstrPtr | FrameOwner | FrameLocalsplus => {
            "frame field"
        }
        CodeLocalsplusNames | CodeLocalsplusKinds => "code object field",
        CodeFilename | CodeName | CodeQualname | CodeLinetable | CodeFirstLine | CodeAdaptive => {
            "code object field"
        }
        ObjectType => "object type",
        BytesSize | BytesData => "bytes field",
        StrState | StrLength | StrAsciiSize => "str field",
        EvalBreaker | RemoteDebuggerSupport | RemoteDebuggingEnabled => "remote debugging field",
        DebuggerPendingCall | DebuggerScriptPath | DebuggerScriptPathSize => {
            "remote debugger support field"
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The words of 3.14.8's table as Debian builds it that pytap reads.
    pub(crate) fn table_3_14() -> Vec<u8> {
        let mut words = [0u64; 128];
        words[0] = u64::from_le_bytes(*COOKIE);
        words[1] = 0x030e08f0;
        let set = |w: &mut [u64; 128], pairs: &[(usize, u64)]| {
            for &(at, v) in pairs {
                w[at] = v;
            }
        };
        set(
            &mut words,
            &[
                (3, 316616),
                (5, 808),
                (6, 225864),
                (8, 7272),
                (9, 7344),
                (10, 7360),
                (18, 7800),
                (19, 7792),
                (20, 7992),
                (22, 832),
                (24, 8),
                (26, 72),
                (27, 152),
                (28, 160),
                (31, 88),
                (32, 8),
                (33, 0),
                (34, 56),
                (35, 80),
                (36, 74),
                (39, 216),
                (40, 112),
                (41, 120),
                (42, 128),
                (43, 136),
                (44, 68),
                (46, 96),
                (47, 104),
                (48, 208),
                (50, 16),
                (51, 8),
                (74, 40),
                (75, 16),
                (76, 32),
                (77, 64),
                (78, 32),
                (79, 16),
                (80, 40),
            ],
        );
        words[89..95].copy_from_slice(&[24, 304, 8076, 0, 4, 512]);
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn the_3_14_table_is_read_by_its_layout() {
        let d = DebugOffsets::parse(&table_3_14()).unwrap();
        assert_eq!(d.minor(), 14);
        assert_eq!(d.get(InterpretersHead), Some(808));
        assert_eq!(d.get(ThreadsMain), Some(7360));
        assert_eq!(d.get(CurrentFrame), Some(72));
        assert_eq!(d.get(FrameOwner), Some(74));
        assert_eq!(d.get(CodeAdaptive), Some(208));
        assert_eq!(d.get(DebuggerScriptPathSize), Some(512));
        assert_eq!(d.thread_state_size(), 832);
    }

    #[test]
    fn other_versions_and_nonsense_are_refused() {
        let mut t = table_3_14();
        t[8..16].copy_from_slice(&0x030c05f0u64.to_le_bytes());
        assert!(
            DebugOffsets::parse(&t)
                .unwrap_err()
                .to_string()
                .contains("3.12")
        );
        let mut t = table_3_14();
        t[0] = b'y';
        assert_eq!(DebugOffsets::parse(&t), Err(DebugOffsetsError::Missing));
        // A current frame past the end of the thread state.
        let mut t = table_3_14();
        t[8 * 26..8 * 27].copy_from_slice(&900u64.to_le_bytes());
        assert_eq!(
            DebugOffsets::parse(&t),
            Err(DebugOffsetsError::Nonsense("thread state field"))
        );
        // A frame of no plausible size.
        let mut t = table_3_14();
        t[8 * 31..8 * 32].copy_from_slice(&0u64.to_le_bytes());
        assert!(DebugOffsets::parse(&t).is_err());
        assert!(DebugOffsets::parse(&table_3_14()[..100]).is_err());
    }
}
