//! Telling a generator's creation from its resumptions on CPython 3.15.
//!
//! 3.15 fires `function__entry` when a generator (or coroutine, or async
//! generator) is *created*: the call pushes the generator function's frame,
//! the frame runs `RETURN_GENERATOR` and is moved into the new generator
//! object, and no `function__return` ever follows. Every later resumption
//! fires entry and return in pairs. The marker's arguments (file, name,
//! current line) are the same for the creation and the first resumption,
//! so from the arguments alone an unmatched entry cannot be recognised
//! until some enclosing frame returns, and everything in between would be
//! shown one level too deep.
//!
//! The frame tells them apart. CPython's `dtrace_function_entry(frame)`
//! computes the line with `PyUnstable_InterpreterFrame_GetLine(frame)`,
//! an exported function, right before the marker, and the compiler keeps
//! `frame` in a callee-saved register across that call. [`frame_register`]
//! finds that register in the machine code before the site; the probe then
//! reads the frame: a frame owned by the thread (not yet by a generator)
//! whose code object has a generator flag is a creation. Because the
//! register comes from pattern-matching machine code, the probe also checks
//! that the code object's `co_name` is the very string the marker passed;
//! when it is not, nothing is flagged and flow falls back to repairing
//! depths at the enclosing return.
//!
//! The offsets were read with gdb from Debian's 3.15.0 build at the marker
//! (`x/12gx $r13`: the frame; `co_flags` 0x23 for a generator, 0x3 for a
//! plain function; `co_name` + 40 equal to the marker's name pointer).

use pytap_elf::X86Reg;

use super::version::PyVersion;

/// Where 3.15's frames and code objects keep what the probe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// `_PyInterpreterFrame.f_executable`: a tagged `_PyStackRef` to the code object.
    pub executable: u16,
    /// `_PyInterpreterFrame.owner` (a `char`).
    pub owner: u16,
    /// `FRAME_OWNED_BY_THREAD`: a frame on the thread's stack, which a
    /// resumed generator's frame never is (it is owned by the generator).
    pub owned_by_thread: u8,
    /// `PyCodeObject.co_flags`.
    pub code_flags: u16,
    /// `PyCodeObject.co_name`.
    pub code_name: u16,
    /// The characters of a compact ASCII str (what `PyUnicode_AsUTF8` returns).
    pub str_ascii_data: u16,
}

/// Where a module keeps the `_PyInterpreterFrame *` at `function__entry`,
/// and how to read the frame ([`crate::process::module::Module::entry_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSource {
    /// The register, from the machine code before the site.
    pub register: X86Reg,
    /// The version's frame and code object layout.
    pub layout: FrameLayout,
}

/// `CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR`.
pub const GENERATOR_FLAGS: u32 = 0x20 | 0x80 | 0x200;

/// The low bits of a `_PyStackRef` that are tags, not address.
pub const STACKREF_TAG_BITS: i32 = 7;

const FROM_315: FrameLayout = FrameLayout {
    executable: 0,
    owner: 74,
    owned_by_thread: 0,
    code_flags: 48,
    code_name: 120,
    str_ascii_data: 40,
};

impl FrameLayout {
    /// The layout for a version whose `function__entry` fires at generator
    /// creation (3.15 and later); `None` for versions where it does not.
    pub fn for_version(version: PyVersion) -> Option<FrameLayout> {
        (version.major == 3 && version.minor >= 15).then_some(FROM_315)
    }

    /// Bytes of the frame the probe copies (up to and including `owner`).
    pub fn frame_bytes(&self) -> u16 {
        (self.owner.max(self.executable + 8) + 8) & !7
    }

    /// Bytes of the code object the probe copies, from `code_flags` to the
    /// end of `co_name`.
    pub fn code_bytes(&self) -> u16 {
        self.code_name + 8 - self.code_flags
    }
}

/// The exported function whose call precedes the marker.
pub const GET_LINE_SYMBOL: &str = "PyUnstable_InterpreterFrame_GetLine";

/// The callee-saved register holding the frame at a `function__entry`
/// site, from the machine code right before it: `code` ends at the site
/// (whose address is `site`), its last instruction must be a `call` to
/// `get_line` (the address of [`GET_LINE_SYMBOL`]), and the argument of that
/// call must have been copied into `%rdi` from a callee-saved register by a
/// `mov` within the bytes before it. `None` when the code does not look
/// like that.
pub fn frame_register(code: &[u8], site: u64, get_line: u64) -> Option<X86Reg> {
    let call_at = code.len().checked_sub(5)?;
    if code[call_at] != 0xe8 {
        return None;
    }
    let rel = i32::from_le_bytes(code[call_at + 1..].try_into().ok()?);
    if site.wrapping_add_signed(i64::from(rel)) != get_line {
        return None;
    }
    // The last `mov %REG,%rdi` (REX.W 89 /r, mod 11, rm = rdi) or
    // `mov %rdi,...` written the other way round (REX.W 8b /r, reg = rdi).
    // Only the last one counts: an earlier copy was overwritten by it.
    let source = (0..call_at.saturating_sub(2)).rev().find_map(|at| {
        let [rex, op, modrm] = [code[at], code[at + 1], code[at + 2]];
        if rex & 0xf8 != 0x48 || modrm >> 6 != 3 {
            return None;
        }
        let reg = (modrm >> 3) & 7 | (rex & 4) << 1;
        let rm = modrm & 7 | (rex & 1) << 3;
        match op {
            0x89 if rm == 7 => Some(reg),
            0x8b if reg == 7 => Some(rm),
            _ => None,
        }
    })?;
    callee_saved(source)
}

/// A callee-saved register by its x86 number (survives the call).
fn callee_saved(number: u8) -> Option<X86Reg> {
    Some(match number {
        3 => X86Reg::Rbx,
        5 => X86Reg::Rbp,
        12 => X86Reg::R12,
        13 => X86Reg::R13,
        14 => X86Reg::R14,
        15 => X86Reg::R15,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 24 bytes before Debian 3.15.0's function__entry site (0x544e4a):
    /// the end of an instruction, `mov 0x78(%rbx),%rdi; mov %rax,%r12; call PyUnicode_AsUTF8;
    /// mov %r13,%rdi; mov %rax,%rbx; call PyUnstable_InterpreterFrame_GetLine`.
    const DEBIAN_315: [u8; 24] = [
        0x00, 0x48, 0x8b, 0x7b, 0x78, 0x49, 0x89, 0xc4, 0xe8, 0x41, 0x32, 0x0a, 0x00, 0x4c, 0x89,
        0xef, 0x48, 0x89, 0xc3, 0xe8, 0x66, 0x2f, 0x26, 0x00,
    ];
    const SITE: u64 = 0x544e4a;
    const GET_LINE: u64 = 0x7a7db0;

    #[test]
    fn finds_the_frame_register_of_debians_315() {
        assert_eq!(
            frame_register(&DEBIAN_315, SITE, GET_LINE),
            Some(X86Reg::R13)
        );
    }

    #[test]
    fn refuses_code_that_does_not_call_get_line_last() {
        assert_eq!(frame_register(&DEBIAN_315, SITE, GET_LINE + 1), None);
        assert_eq!(frame_register(&DEBIAN_315[..23], SITE - 1, GET_LINE), None);
        assert_eq!(frame_register(&[], SITE, GET_LINE), None);
        assert_eq!(frame_register(&[0xe8, 0, 0], SITE, GET_LINE), None);
    }

    #[test]
    fn the_argument_must_come_from_a_callee_saved_register() {
        // mov %rax,%rdi (48 89 c7): rax does not survive the call.
        let mut code = DEBIAN_315;
        code[13..16].copy_from_slice(&[0x48, 0x89, 0xc7]);
        assert_eq!(frame_register(&code, SITE, GET_LINE), None);
        // A copy from r13 before it was overwritten: still none.
        code[5..8].copy_from_slice(&[0x4c, 0x89, 0xef]);
        assert_eq!(frame_register(&code, SITE, GET_LINE), None);
        code = DEBIAN_315;
        // mov %rbp,%rdi (48 89 ef) and its 8b form mov %r14 -> rdi (49 8b fe).
        code[13..16].copy_from_slice(&[0x48, 0x89, 0xef]);
        assert_eq!(frame_register(&code, SITE, GET_LINE), Some(X86Reg::Rbp));
        code[13..16].copy_from_slice(&[0x49, 0x8b, 0xfe]);
        assert_eq!(frame_register(&code, SITE, GET_LINE), Some(X86Reg::R14));
    }

    #[test]
    fn layout_only_where_creation_fires_entry() {
        assert_eq!(FrameLayout::for_version(PyVersion::new(3, 11, 2)), None);
        let l = FrameLayout::for_version(PyVersion::new(3, 15, 0)).unwrap();
        assert_eq!(l.frame_bytes(), 80);
        assert_eq!(l.code_bytes(), 80);
    }
}
