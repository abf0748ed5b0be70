//! pytap's pprof files read by Go's own `go tool pprof` (Debian's
//! golang-go): the names, files, lines, labels and counts it reads back
//! are the profile's.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use pytap::export::profile::pprof;
use pytap::model::profile::{Frame, FrameKind, Mode, Profile, ThreadInfo, ThreadKey};

use crate::harness::scratch;

/// `go tool pprof ARGS FILE`'s standard output, and that it said nothing
/// on its standard error (no complaint about the file).
fn go_pprof(args: &[&str], file: &Path) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("prerequisite missing: go (golang-go): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "go tool pprof failed: {stderr}");
    assert_eq!(stderr, "", "go tool pprof {args:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// A frame as `-raw` lists a location: function, file, line.
type Frame3 = (String, String, u32);

/// A sample as `-raw` lists it: count, nanoseconds, frames (innermost
/// first) and labels.
type RawSample = (u64, u64, Vec<Frame3>, String);

/// `-raw`'s header lines (before `Samples:`) and samples.
fn raw_samples(raw: &str) -> (Vec<String>, Vec<RawSample>) {
    let (header, rest) = raw.split_once("Samples:\n").expect("a Samples section");
    let (samples, rest) = rest.split_once("Locations\n").expect("a Locations section");
    let (locations, _) = rest.split_once("Mappings\n").expect("a Mappings section");
    // `  N: 0x0 M=1 NAME FILE:LINE s=0…`, NAME possibly with spaces.
    let mut frames: HashMap<String, Frame3> = HashMap::new();
    for line in locations.lines() {
        let (id, rest) = line.trim().split_once(": 0x0 M=1 ").expect(line);
        let (rest, _) = rest.rsplit_once(" s=").expect(line);
        let (name, place) = rest.rsplit_once(' ').expect(line);
        let (file, n) = place.rsplit_once(':').expect(line);
        let frame = (name.to_string(), file.to_string(), n.parse().expect(line));
        frames.insert(id.to_string(), frame);
    }
    let mut out = Vec::new();
    let mut lines = samples.lines().skip(1).peekable();
    while let Some(line) = lines.next() {
        let (values, ids) = line.split_once(':').expect(line);
        let mut values = values
            .split_whitespace()
            .map(|v| v.parse::<u64>().expect(line));
        let (n, ns) = (values.next().unwrap(), values.next().unwrap());
        let stack = ids
            .split_whitespace()
            .map(|id| frames[id].clone())
            .collect();
        let mut labels = Vec::new();
        while let Some(l) = lines.next_if(|l| l.starts_with("                ")) {
            labels.push(l.trim().to_string());
        }
        out.push((n, ns, stack, labels.join(" ")));
    }
    (header.lines().map(str::to_string).collect(), out)
}

/// Two threads, recursion, an unknown frame, a native one, and a name with
/// non-ASCII characters and `;`.
fn profile() -> Profile {
    let mut p = Profile::new(Mode::Cpu, 100);
    p.duration_ns = 2_000_000_000;
    let frame = |function: &str, file: &str, line, kind| Frame {
        function: function.into(),
        file: file.into(),
        line,
        kind,
    };
    let module = p.intern(frame("<module>", "/app/main.py", 10, FrameKind::Python));
    let fib = p.intern(frame("fib", "/app/main.py", 3, FrameKind::Python));
    let naive = p.intern(frame("naïve;λ", "/app/ünï.py", 7, FrameKind::Python));
    let unknown = p.intern(frame("<unknown 0x7f00>", "", 0, FrameKind::Unknown));
    let native = p.intern(frame(
        "PyObject_Call",
        "/usr/lib/libpython3.11.so",
        0,
        FrameKind::Native,
    ));
    let (main, other) = (
        ThreadKey { pid: 42, tid: 42 },
        ThreadKey { pid: 42, tid: 43 },
    );
    let info = |name: &str| ThreadInfo {
        name: name.into(),
        process: "python3".into(),
    };
    p.name_thread(main, info("MainThread"));
    p.name_thread(other, info("worker"));
    for _ in 0..3 {
        p.add(main, &[fib, fib, module], 10_000_000, 0);
    }
    p.add(main, &[naive, module], 10_000_000, 0);
    p.add(main, &[unknown, module], 10_000_000, 0);
    p.add(other, &[native, naive], 10_000_000, 0);
    p.add(other, &[native, naive], 10_000_000, 0);
    p
}

fn frame(function: &str, file: &str, line: u32) -> Frame3 {
    (function.to_string(), file.to_string(), line)
}

#[test]
fn go_tool_pprof_reads_back_names_files_lines_and_counts() {
    let dir = scratch("pprof");
    let file = dir.join("profile.pb.gz");
    let mut out = std::fs::File::create(&file).unwrap();
    pprof::write(&profile(), &mut out).unwrap();
    drop(out);

    let (header, samples) = raw_samples(&go_pprof(&["-raw"], &file));
    let version = format!("Comment: pytap {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        header,
        [
            version.as_str(),
            "Comment: frames unknown: 1",
            "PeriodType: cpu nanoseconds",
            "Period: 10000000",
            "Duration: 2s",
        ]
    );
    let module = frame("<module>", "/app/main.py", 10);
    let fib = frame("fib", "/app/main.py", 3);
    let naive = frame("naïve;λ", "/app/ünï.py", 7);
    let unknown = frame("<unknown 0x7f00>", "", 0);
    let native = frame("PyObject_Call", "/usr/lib/libpython3.11.so", 0);
    let main = "process:[python3] thread:[MainThread] pid:[42] tid:[42]";
    let worker = "process:[python3] thread:[worker] pid:[42] tid:[43]";
    let ms = 10_000_000;
    assert_eq!(
        samples,
        [
            (
                3,
                3 * ms,
                vec![fib.clone(), fib, module.clone()],
                main.into()
            ),
            (1, ms, vec![naive.clone(), module.clone()], main.into()),
            (1, ms, vec![unknown, module], main.into()),
            (2, 2 * ms, vec![native, naive], worker.into()),
        ]
    );

    // Per function: flat and cum, the recursive fib counted once.
    let top = go_pprof(&["-top"], &file);
    let rows: Vec<_> = (top.lines())
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .map(|l| {
            let cells: Vec<_> = l.split_whitespace().collect();
            (cells[0], cells[3], cells[5..].join(" "))
        })
        .collect();
    let want = [
        ("30ms", "30ms", "fib"),
        ("20ms", "20ms", "PyObject_Call"),
        ("10ms", "10ms", "<unknown 0x7f00>"),
        ("10ms", "30ms", "naïve;λ"),
        ("0", "50ms", "<module>"),
    ];
    assert_eq!(rows, want.map(|(f, c, n)| (f, c, n.to_string())), "{top}");
    assert!(top.contains("Type: cpu\n"), "{top}");
}
