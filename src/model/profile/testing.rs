//! The small profile every profile output's tests draw: two threads of one
//! process (one unnamed), a recursive function, an unknown frame, a native
//! one, and a name with non-ASCII characters and the folded separator `;`.

use super::{Frame, FrameKind, Mode, Profile, ThreadInfo, ThreadKey};

/// The main thread.
pub const MAIN: ThreadKey = ThreadKey { pid: 42, tid: 42 };
/// The other thread, never named (its process's name stands for it).
pub const OTHER: ThreadKey = ThreadKey { pid: 42, tid: 43 };
/// The sampling period at 100 Hz.
pub const PERIOD_NS: u64 = 10_000_000;

fn frame(function: &str, file: &str, line: u32, kind: FrameKind) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
        kind,
    }
}

/// A `cpu` profile at 100 Hz of 7 samples, each weighing one period
/// (frames innermost first):
///
/// - [`MAIN`]: `fib, fib, <module>` 3 times, `naïve;λ, <module>` once,
///   `<unknown 0x7f00>, <module>` once;
/// - [`OTHER`]: `PyObject_Call, naïve;λ` twice.
///
/// In the order taken: main fib ×2, other, main naïve, main fib, other,
/// main unknown.
pub fn profile() -> Profile {
    let mut p = Profile::new(Mode::Cpu, 100);
    p.duration_ns = 70_000_000;
    p.start_unix_ns = 1_700_000_000_000_000_000;
    let module = p.intern(frame("<module>", "app.py", 10, FrameKind::Python));
    let fib = p.intern(frame("fib", "app.py", 3, FrameKind::Python));
    let naive = p.intern(frame("naïve;λ", "ünï.py", 7, FrameKind::Python));
    let unknown = p.intern(frame("<unknown 0x7f00>", "", 0, FrameKind::Unknown));
    let native = p.intern(frame(
        "PyObject_Call",
        "/usr/lib/libpython3.11.so",
        0,
        FrameKind::Native,
    ));
    p.name_thread(
        MAIN,
        ThreadInfo {
            name: "MainThread".into(),
            process: "python3".into(),
        },
    );
    p.name_thread(
        OTHER,
        ThreadInfo {
            name: String::new(),
            process: "python3".into(),
        },
    );
    let fibs = [fib, fib, module];
    p.add(MAIN, &fibs, PERIOD_NS, 1000);
    p.add(MAIN, &fibs, PERIOD_NS, 2000);
    p.add(OTHER, &[native, naive], PERIOD_NS, 3000);
    p.add(MAIN, &[naive, module], PERIOD_NS, 4000);
    p.add(MAIN, &fibs, PERIOD_NS, 5000);
    p.add(OTHER, &[native, naive], PERIOD_NS, 6000);
    p.add(MAIN, &[unknown, module], PERIOD_NS, 7000);
    p
}
