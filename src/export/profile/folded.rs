//! A profile's folded stacks (`thread;outer;…;inner N`), as flamegraph.pl,
//! inferno and most flame graph tools read them; also the lines the SVG
//! flame graph is drawn from ([`super::svg`]).
//!
//! One line per distinct stack of a thread: the thread's frame first,
//! `NAME (pid P, tid T)` as the timeline's flame charts name it (so that
//! threads are told apart, and a tool can still merge them by dropping the
//! first frame), then the frames outermost first, `function (file:line)`
//! ([`crate::model::label::sampled_frame`]), escaped as the timeline's
//! folded stacks are (`;` becomes `:`, line breaks spaces, other controls
//! `\xNN`). N is the profile's unit: samples, or nanoseconds in `wall`
//! mode. Lines are sorted; stacks whose text is the same (two names that
//! differ only by `;` and `:`) are one line.

use std::io::{BufWriter, Write};

use anyhow::Result;

use crate::export::folded::folded_safe;
use crate::model::label::{sampled_frame, sampled_thread};
use crate::model::profile::{FrameId, Profile, ThreadKey};

/// A frame's text in folded stacks.
pub fn frame_text(profile: &Profile, id: FrameId) -> String {
    let f = profile.frame(id);
    folded_safe(&sampled_frame(&f.function, &f.file, f.line))
}

/// A thread's frame in folded stacks.
pub fn thread_text(profile: &Profile, thread: ThreadKey) -> String {
    folded_safe(&sampled_thread(thread, profile.thread(thread)))
}

/// The folded lines of `profile` (`stack N`, no line breaks), sorted.
pub fn lines(profile: &Profile) -> Vec<String> {
    // Each frame's and thread's text, made once.
    let frames: Vec<String> = (0..profile.frames().len() as u32)
        .map(|i| frame_text(profile, FrameId(i)))
        .collect();
    let mut thread: Option<(ThreadKey, String)> = None;
    let mut stacks: Vec<(String, u64)> = Vec::new();
    for (key, ids, totals) in profile.stacks() {
        if thread.as_ref().is_none_or(|(k, _)| *k != key) {
            thread = Some((key, thread_text(profile, key)));
        }
        let mut text = thread.as_ref().map(|(_, t)| t.clone()).unwrap_or_default();
        for id in ids.iter().rev() {
            text.push(';');
            text.push_str(&frames[id.0 as usize]);
        }
        stacks.push((text, profile.value(totals)));
    }
    stacks.sort_unstable();
    let mut lines: Vec<String> = Vec::with_capacity(stacks.len());
    let mut last: Option<(String, u64)> = None;
    for (text, n) in stacks {
        match &mut last {
            Some((t, total)) if *t == text => *total = total.saturating_add(n),
            _ => {
                if let Some((t, total)) = last.replace((text, n)) {
                    lines.push(format!("{t} {total}"));
                }
            }
        }
    }
    if let Some((t, total)) = last {
        lines.push(format!("{t} {total}"));
    }
    lines
}

/// Writes the folded lines of `profile` to `out`, one a line.
pub fn write(profile: &Profile, out: &mut dyn Write) -> Result<()> {
    let mut out = BufWriter::new(out);
    for line in lines(profile) {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::profile::testing::{self, MAIN, PERIOD_NS};
    use crate::model::profile::{Frame, FrameKind, Mode};

    const MAIN_T: &str = "MainThread (pid 42, tid 42)";
    const OTHER_T: &str = "python3 (pid 42, tid 43)";
    const MODULE: &str = "<module> (app.py:10)";
    const FIB: &str = "fib (app.py:3)";
    const NAIVE: &str = "naïve:λ (ünï.py:7)";

    #[test]
    fn one_sorted_line_per_stack_of_a_thread() -> Result<()> {
        let mut out = Vec::new();
        write(&testing::profile(), &mut out)?;
        let want = [
            format!("{MAIN_T};{MODULE};<unknown 0x7f00> 1"),
            format!("{MAIN_T};{MODULE};{FIB};{FIB} 3"),
            format!("{MAIN_T};{MODULE};{NAIVE} 1"),
            format!("{OTHER_T};{NAIVE};PyObject_Call (/usr/lib/libpython3.11.so) 2"),
        ];
        assert_eq!(String::from_utf8(out)?, want.join("\n") + "\n");
        Ok(())
    }

    #[test]
    fn wall_mode_counts_nanoseconds() {
        let mut p = testing::profile();
        p.mode = Mode::Wall;
        let got = lines(&p);
        assert_eq!(
            got[1],
            format!("{MAIN_T};{MODULE};{FIB};{FIB} {}", 3 * PERIOD_NS)
        );
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn stacks_with_the_same_text_are_one_line() {
        let mut p = Profile::new(Mode::Cpu, 100);
        let frame = |function: &str| Frame {
            function: function.into(),
            file: "a.py".into(),
            line: 1,
            kind: FrameKind::Python,
        };
        let (semi, colon) = (p.intern(frame("a;b")), p.intern(frame("a:b")));
        let ctl = p.intern(frame("x\ny\x1b"));
        p.add(MAIN, &[semi], 1, 0);
        p.add(MAIN, &[colon], 1, 0);
        p.add(MAIN, &[ctl], 1, 0);
        // A sample with no frame is the thread alone.
        p.add(MAIN, &[], 1, 0);
        // Never named: the thread is `python`.
        assert_eq!(
            lines(&p),
            [
                "python (pid 42, tid 42) 1",
                "python (pid 42, tid 42);a:b (a.py:1) 2",
                "python (pid 42, tid 42);x y\\x1b (a.py:1) 1",
            ]
        );
        assert!(lines(&Profile::new(Mode::Cpu, 100)).is_empty());
    }
}
