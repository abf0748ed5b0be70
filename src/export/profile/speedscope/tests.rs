//! Tests of the speedscope writer: the whole file, read back as JSON.

use serde_json::{Value, json};

use super::*;
use crate::model::profile::testing::{self, PERIOD_NS as P};
use crate::model::profile::{Frame, FrameKind, Mode, ThreadKey};

fn speedscope(profile: &Profile, name: &str) -> Result<Value> {
    let mut out = Vec::new();
    write(profile, name, &mut out)?;
    Ok(serde_json::from_slice(&out)?)
}

fn frames() -> Value {
    json!([
        {"name": "<module>", "file": "app.py", "line": 10},
        {"name": "fib", "file": "app.py", "line": 3},
        {"name": "naïve;λ", "file": "ünï.py", "line": 7},
        {"name": "<unknown 0x7f00>"},
        {"name": "PyObject_Call", "file": "/usr/lib/libpython3.11.so"},
    ])
}

fn sampled(name: &str, unit: &str, samples: Value, weights: &[u64]) -> Value {
    json!({
        "type": "sampled",
        "name": name,
        "unit": unit,
        "startValue": 0,
        "endValue": weights.iter().sum::<u64>(),
        "samples": samples,
        "weights": weights,
    })
}

fn file(name: &str, profiles: Vec<Value>) -> Value {
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": format!("pytap {}", env!("CARGO_PKG_VERSION")),
        "name": name,
        "activeProfileIndex": 0,
        "shared": {"frames": frames()},
        "profiles": profiles,
    })
}

#[test]
fn one_sampled_profile_per_thread_in_time_order() -> Result<()> {
    let got = speedscope(&testing::profile(), "python3 \"app.py\"")?;
    let main = sampled(
        "MainThread (pid 42, tid 42)",
        "nanoseconds",
        json!([[0, 1, 1], [0, 2], [0, 1, 1], [0, 3]]),
        &[2 * P, P, P, P],
    );
    let other = sampled(
        "python3 (pid 42, tid 43)",
        "nanoseconds",
        json!([[2, 4]]),
        &[2 * P],
    );
    assert_eq!(got, file("python3 \"app.py\"", vec![main, other]));
    Ok(())
}

#[test]
fn without_a_timeline_each_stack_is_one_sample() -> Result<()> {
    // The same samples, the timeline not kept.
    let mut p = Profile::new(Mode::Cpu, 100);
    p.limit_timeline(0);
    let full = testing::profile();
    for f in full.frames() {
        p.intern(f.clone());
    }
    for (info_key, info) in full.threads() {
        p.name_thread(*info_key, info.clone());
    }
    for (thread, frames, totals) in full.stacks() {
        for _ in 0..totals.samples {
            p.add(thread, frames, P, 0);
        }
    }
    let main = sampled(
        "MainThread (pid 42, tid 42)",
        "nanoseconds",
        json!([[0, 1, 1], [0, 2], [0, 3]]),
        &[3 * P, P, P],
    );
    let other = sampled(
        "python3 (pid 42, tid 43)",
        "nanoseconds",
        json!([[2, 4]]),
        &[2 * P],
    );
    assert_eq!(speedscope(&p, "x")?, file("x", vec![main, other]));
    Ok(())
}

#[test]
fn weightless_samples_are_counted_and_names_escaped() -> Result<()> {
    let mut p = Profile::new(Mode::Wall, 100);
    let f = p.intern(Frame {
        function: "f\u{1b}]0;x\u{7}".into(),
        file: "a\"b.py".into(),
        line: 1,
        kind: FrameKind::Python,
    });
    let t = ThreadKey { pid: 1, tid: 2 };
    p.add(t, &[f], 0, 0);
    p.add(t, &[f], 0, 0);
    let mut out = Vec::new();
    write(&p, "", &mut out)?;
    let text = String::from_utf8(out)?;
    // Nothing of the name reaches a terminal raw.
    assert!(text.contains(r#""f\u001b]0;x\u0007""#), "{text}");
    assert!(!text.contains('\u{1b}'));
    let v: Value = serde_json::from_str(&text)?;
    assert_eq!(v["shared"]["frames"][0]["file"], "a\"b.py");
    let one = sampled("python (pid 1, tid 2)", "none", json!([[0]]), &[2]);
    assert_eq!(v["profiles"], json!([one]));
    Ok(())
}

#[test]
fn an_empty_profile_is_an_empty_file() -> Result<()> {
    let got = speedscope(&Profile::new(Mode::Cpu, 100), "")?;
    assert_eq!(got["profiles"], json!([]));
    assert_eq!(got["shared"]["frames"], json!([]));
    Ok(())
}
