//! Built-in functions: SystemTap's tapset functions pytap provides, with
//! their signatures and what they need to run.

use crate::ir::Ty;

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `pid()`: the process id.
    Pid,
    /// `tid()`: the thread id.
    Tid,
    /// `ppid()`: the parent's process id.
    Ppid,
    /// `uid()`: the user id.
    Uid,
    /// `cpu()`: the CPU.
    Cpu,
    /// `execname()`: the thread's name.
    Execname,
    /// `target()`: the `-c` command's or `-x` process's pid.
    Target,
    /// `pp()`: the probe point, as text.
    Pp,
    /// `gettimeofday_s()`.
    GettimeofdayS,
    /// `gettimeofday_ms()`.
    GettimeofdayMs,
    /// `gettimeofday_us()`.
    GettimeofdayUs,
    /// `gettimeofday_ns()`.
    GettimeofdayNs,
    /// `thread_indent(delta)`: time, `execname(tid):` and indentation.
    ThreadIndent,
    /// `thread_indent_depth(delta)`: the thread's depth.
    ThreadIndentDepth,
    /// `indent(delta)`: as `thread_indent`, one counter for all threads.
    Indent,
    /// `indent_depth(delta)`.
    IndentDepth,
    /// `user_string(addr)`: a NUL-terminated string of the traced process.
    UserString,
    /// `user_string_n(addr, n)`: at most `n` bytes of it.
    UserStringN,
    /// `user_string2(addr, err_msg)`: `err_msg` when unreadable.
    UserString2,
    /// `strlen(s)`.
    Strlen,
    /// `substr(s, start, length)`.
    Substr,
    /// `stringat(s, pos)`: the byte at `pos`.
    Stringat,
    /// `isinstr(s1, s2)`: 1 if `s2` is in `s1`.
    Isinstr,
    /// `strpos(s1, s2)`: where, or -1.
    Strpos,
    /// `str_replace(s, find, replace)`.
    StrReplace,
    /// `strtol(s, base)`.
    Strtol,
    /// `isdigit(s)`: whether the first byte is a digit.
    Isdigit,
    /// `tokenize(input, delim)`: the first token.
    Tokenize,
    /// `tokenize(delim)`: the next token of the last input.
    TokenizeNext,
    /// `text_str(s)`: non-printable bytes escaped.
    TextStr,
    /// `exit()`: end the run (after `end` probes).
    Exit,
    /// `error(msg)`: a run-time error; the run ends.
    Error,
    /// `warn(msg)`: `WARNING: msg` on stderr.
    Warn,
    /// `log(msg)`: `msg` and a newline.
    Log,
    /// D's `timestamp`: the monotonic clock in nanoseconds.
    Timestamp,
    /// D's `probename`: the marker's name with dashes (`function-entry`).
    Probename,
    /// D's `probefunc`: the C function holding the marker's site.
    Probefunc,
    /// D's `probemod`: the base name of the file holding the site.
    Probemod,
    /// D's probe id (`dtrace -l`'s ID; `BEGIN` 1, `END` 2), for the
    /// firing line.
    ProbeId,
    /// D's `basename(path)`.
    Basename,
    /// D's `dirname(path)`.
    Dirname,
    /// D's `strstr(s, t)`: `s` from the first `t` on, or "".
    Strstr,
    /// D's `substr(s, index[, length])`: negative `index` counts from the end.
    DSubstr,
    /// The Python stack of the firing thread, innermost first, at most
    /// `nframes` frames (0: all): D's `jstack(nframes)`, SystemTap's
    /// `sprint_pybacktrace()`. A string to the script; in the kernel, the
    /// id of the stack the probe walked, named by pytap when printed.
    Pystack,
    /// The native stack of the firing thread, innermost first, at most
    /// `nframes` frames (0: all), unwound by frame pointers: D's
    /// `ustack(nframes)`, SystemTap's `sprint_ubacktrace()`. Like
    /// [`Builtin::Pystack`], the id of the stack in the kernel.
    Ustack,
}

/// What a built-in needs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// The probe's context (the firing thread, its memory, the clock):
    /// evaluated where the probe fires.
    Context,
    /// Nothing but its arguments: evaluated anywhere.
    Pure,
    /// It acts on the run (output, the end, errors).
    Action,
}

impl Builtin {
    /// Every built-in.
    pub const ALL: [Builtin; 45] = [
        Builtin::Pid,
        Builtin::Tid,
        Builtin::Ppid,
        Builtin::Uid,
        Builtin::Cpu,
        Builtin::Execname,
        Builtin::Target,
        Builtin::Pp,
        Builtin::GettimeofdayS,
        Builtin::GettimeofdayMs,
        Builtin::GettimeofdayUs,
        Builtin::GettimeofdayNs,
        Builtin::ThreadIndent,
        Builtin::ThreadIndentDepth,
        Builtin::Indent,
        Builtin::IndentDepth,
        Builtin::UserString,
        Builtin::UserStringN,
        Builtin::UserString2,
        Builtin::Strlen,
        Builtin::Substr,
        Builtin::Stringat,
        Builtin::Isinstr,
        Builtin::Strpos,
        Builtin::StrReplace,
        Builtin::Strtol,
        Builtin::Isdigit,
        Builtin::Tokenize,
        Builtin::TokenizeNext,
        Builtin::TextStr,
        Builtin::Exit,
        Builtin::Error,
        Builtin::Warn,
        Builtin::Log,
        Builtin::Timestamp,
        Builtin::Probename,
        Builtin::Probefunc,
        Builtin::Probemod,
        Builtin::ProbeId,
        Builtin::Basename,
        Builtin::Dirname,
        Builtin::Strstr,
        Builtin::DSubstr,
        Builtin::Pystack,
        Builtin::Ustack,
    ];

    /// The name scripts call it by.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Pid => "pid",
            Builtin::Tid => "tid",
            Builtin::Ppid => "ppid",
            Builtin::Uid => "uid",
            Builtin::Cpu => "cpu",
            Builtin::Execname => "execname",
            Builtin::Target => "target",
            Builtin::Pp => "pp",
            Builtin::GettimeofdayS => "gettimeofday_s",
            Builtin::GettimeofdayMs => "gettimeofday_ms",
            Builtin::GettimeofdayUs => "gettimeofday_us",
            Builtin::GettimeofdayNs => "gettimeofday_ns",
            Builtin::ThreadIndent => "thread_indent",
            Builtin::ThreadIndentDepth => "thread_indent_depth",
            Builtin::Indent => "indent",
            Builtin::IndentDepth => "indent_depth",
            Builtin::UserString => "user_string",
            Builtin::UserStringN => "user_string_n",
            Builtin::UserString2 => "user_string2",
            Builtin::Strlen => "strlen",
            Builtin::Substr => "substr",
            Builtin::Stringat => "stringat",
            Builtin::Isinstr => "isinstr",
            Builtin::Strpos => "strpos",
            Builtin::StrReplace => "str_replace",
            Builtin::Strtol => "strtol",
            Builtin::Isdigit => "isdigit",
            Builtin::Tokenize | Builtin::TokenizeNext => "tokenize",
            Builtin::TextStr => "text_str",
            Builtin::Exit => "exit",
            Builtin::Error => "error",
            Builtin::Warn => "warn",
            Builtin::Log => "log",
            Builtin::Timestamp => "__d_timestamp",
            Builtin::Probename => "__d_probename",
            Builtin::Probefunc => "__d_probefunc",
            Builtin::Probemod => "__d_probemod",
            Builtin::ProbeId => "__d_probeid",
            Builtin::Basename => "__d_basename",
            Builtin::Dirname => "__d_dirname",
            Builtin::Strstr => "__d_strstr",
            Builtin::DSubstr => "__d_substr",
            Builtin::Pystack => "__pystack",
            Builtin::Ustack => "__ustack",
        }
    }

    /// The name messages show (D's built-ins without their prefix).
    pub fn shown(self) -> &'static str {
        match self {
            Builtin::Pystack => "jstack",
            Builtin::Ustack => "ustack",
            _ => self.name().trim_start_matches("__d_"),
        }
    }

    /// Parameter types.
    pub fn params(self) -> &'static [Ty] {
        use Ty::{Long, Str};
        match self {
            Builtin::Pid
            | Builtin::Tid
            | Builtin::Ppid
            | Builtin::Uid
            | Builtin::Cpu
            | Builtin::Execname
            | Builtin::Target
            | Builtin::Pp
            | Builtin::GettimeofdayS
            | Builtin::GettimeofdayMs
            | Builtin::GettimeofdayUs
            | Builtin::GettimeofdayNs
            | Builtin::Timestamp
            | Builtin::Probename
            | Builtin::Probefunc
            | Builtin::Probemod
            | Builtin::ProbeId
            | Builtin::Exit => &[],
            Builtin::ThreadIndent
            | Builtin::ThreadIndentDepth
            | Builtin::Indent
            | Builtin::IndentDepth
            | Builtin::Pystack
            | Builtin::Ustack
            | Builtin::UserString => &[Long],
            Builtin::UserStringN => &[Long, Long],
            Builtin::UserString2 => &[Long, Str],
            Builtin::Strlen
            | Builtin::Isdigit
            | Builtin::TextStr
            | Builtin::TokenizeNext
            | Builtin::Error
            | Builtin::Warn
            | Builtin::Log
            | Builtin::Basename
            | Builtin::Dirname => &[Str],
            Builtin::Strstr => &[Str, Str],
            Builtin::DSubstr => &[Str, Long, Long],
            Builtin::Substr => &[Str, Long, Long],
            Builtin::Stringat | Builtin::Strtol => &[Str, Long],
            Builtin::Isinstr | Builtin::Strpos | Builtin::Tokenize => &[Str, Str],
            Builtin::StrReplace => &[Str, Str, Str],
        }
    }

    /// Return type (actions return 0).
    pub fn ret(self) -> Ty {
        match self {
            Builtin::Execname
            | Builtin::Pp
            | Builtin::ThreadIndent
            | Builtin::Indent
            | Builtin::UserString
            | Builtin::UserStringN
            | Builtin::UserString2
            | Builtin::Substr
            | Builtin::StrReplace
            | Builtin::Tokenize
            | Builtin::TokenizeNext
            | Builtin::TextStr
            | Builtin::Probename
            | Builtin::Probefunc
            | Builtin::Probemod
            | Builtin::Basename
            | Builtin::Dirname
            | Builtin::Strstr
            | Builtin::DSubstr
            | Builtin::Pystack
            | Builtin::Ustack => Ty::Str,
            _ => Ty::Long,
        }
    }

    /// Whether it reads the thread the probe fires in (its ids, name,
    /// CPU, memory or stack), not only the probe's time and place.
    pub fn reads_thread(self) -> bool {
        matches!(
            self,
            Builtin::Pid
                | Builtin::Tid
                | Builtin::Ppid
                | Builtin::Uid
                | Builtin::Cpu
                | Builtin::Execname
                | Builtin::UserString
                | Builtin::UserStringN
                | Builtin::UserString2
                | Builtin::Pystack
                | Builtin::Ustack
        )
    }

    /// What it needs to run.
    pub fn needs(self) -> Needs {
        match self {
            Builtin::Pid
            | Builtin::Tid
            | Builtin::Ppid
            | Builtin::Uid
            | Builtin::Cpu
            | Builtin::Execname
            | Builtin::Target
            | Builtin::Pp
            | Builtin::GettimeofdayS
            | Builtin::GettimeofdayMs
            | Builtin::GettimeofdayUs
            | Builtin::GettimeofdayNs
            | Builtin::Timestamp
            | Builtin::Probefunc
            | Builtin::Probemod
            | Builtin::ProbeId
            | Builtin::ThreadIndent
            | Builtin::ThreadIndentDepth
            | Builtin::Indent
            | Builtin::IndentDepth
            | Builtin::UserString
            | Builtin::UserStringN
            | Builtin::UserString2
            | Builtin::Pystack
            | Builtin::Ustack => Needs::Context,
            Builtin::Exit | Builtin::Error | Builtin::Warn | Builtin::Log => Needs::Action,
            _ => Needs::Pure,
        }
    }

    /// The built-in called `name` with `args` arguments.
    pub fn lookup(name: &str, args: usize) -> Option<Builtin> {
        if name == "tokenize" {
            return Some(if args == 1 {
                Builtin::TokenizeNext
            } else {
                Builtin::Tokenize
            });
        }
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}
