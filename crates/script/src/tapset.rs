//! pytap's built-in `python` tapset: what SystemTap users find in the
//! tapset directory of a distribution that ships CPython's (Fedora's
//! `libpython.stp`, the HOWTO's `python-tapset.stp`), so scripts written
//! against `python.function.entry` run without `-I`.
//!
//! The aliases bind `process("python")`, which pytap resolves as it does
//! in scripts (a path, a name on PATH, or the `-c`/`-x` target's
//! interpreter). Variables each alias sets:
//!
//! | alias | marker | variables |
//! |---|---|---|
//! | `python.function.entry` | `function__entry` | `filename`, `funcname`, `lineno`, `frameptr` |
//! | `python.function.return` | `function__return` | `filename`, `funcname`, `lineno`, `frameptr` |
//! | `python.line` | `line` | `filename`, `funcname`, `lineno` |
//! | `python.gc.start` | `gc__start` | `generation` |
//! | `python.gc.done` | `gc__done` | `collected` |
//! | `python.import.find.load.start` | `import__find__load__start` | `module` |
//! | `python.import.find.load.done` | `import__find__load__done` | `module`, `found` |
//! | `python.audit` | `audit` | `event`, `args` (the argument tuple's address) |
//!
//! `frameptr` is `$arg4` as the HOWTO's tapset has it: the frame where
//! pytap knows where it is (3.15's `function__entry`), else 0.

/// The tapset's file name in messages.
pub const NAME: &str = "<pytap's python tapset>";

/// The tapset's text.
pub const TEXT: &str = r#"// pytap's built-in python tapset (see docs/scripts.md).
probe python.function.entry = process("python").mark("function__entry")
{
    filename = user_string($arg1);
    funcname = user_string($arg2);
    lineno = $arg3;
    frameptr = $arg4
}
probe python.function.return = process("python").mark("function__return")
{
    filename = user_string($arg1);
    funcname = user_string($arg2);
    lineno = $arg3;
    frameptr = $arg4
}
probe python.line = process("python").mark("line")
{
    filename = user_string($arg1);
    funcname = user_string($arg2);
    lineno = $arg3;
}
probe python.gc.start = process("python").mark("gc__start")
{
    generation = $arg1;
}
probe python.gc.done = process("python").mark("gc__done")
{
    collected = $arg1;
}
probe python.import.find.load.start = process("python").mark("import__find__load__start")
{
    module = user_string($arg1);
}
probe python.import.find.load.done = process("python").mark("import__find__load__done")
{
    module = user_string($arg1);
    found = $arg2;
}
probe python.audit = process("python").mark("audit")
{
    event = user_string($arg1);
    args = $arg2;
}
"#;
