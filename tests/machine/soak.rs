//! Long runs: every tool attached for ten minutes to a program that keeps
//! starting and ending threads, and pytap's memory stays flat. Each tool
//! used to keep what it knew of every thread it ever saw (`calls -p` on a
//! threaded HTTP service grew 34.5 -> 54.0 MB in six minutes).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    ChildGuard, alone, fixture, pytap_bin, require_kernel, root, scratch, script,
};

/// How long the soak runs (`PYTAP_SOAK_SECS` shortens it for a quick look;
/// CI runs the full ten minutes).
fn soak() -> Duration {
    let secs = std::env::var("PYTAP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// The memory a tool may gain after its first minute.
const FLAT: u64 = 2 << 20;

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib << 10)
}

struct Tool {
    name: &'static str,
    child: Child,
    /// RSS after the first minute, and the most seen since.
    first_minute: Option<u64>,
    most: u64,
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_tool_stays_flat_under_ten_minutes_of_thread_churn() {
    require_kernel();
    let _alone = alone();
    let soak = soak();
    let dir = scratch("soak");
    let python = &fixture("3.15").binary;
    // 40 threads a second: 24,000 over ten minutes, each with its calls,
    // an import, an audit event and (one in eight) a collection.
    let mut target = ChildGuard::spawn(
        Command::new(python)
            .arg(script("churn.py"))
            .arg((soak + Duration::from_secs(20)).as_secs().to_string())
            .arg("40"),
    );
    target.wait_for_line("ready", Duration::from_secs(20));
    let pid = target.pid().to_string();
    let howto = root().join("tests/scripts/howto");
    let record = dir.join("soak.pytap");
    let tools: Vec<(&'static str, Vec<String>)> = vec![
        ("trace", vec!["trace".into(), "-p".into(), pid.clone()]),
        ("flow", vec!["flow".into(), "-p".into(), pid.clone()]),
        ("calls", vec!["calls".into(), "-p".into(), pid.clone()]),
        (
            "top",
            vec!["top".into(), "--plain".into(), "-p".into(), pid.clone()],
        ),
        ("gc", vec!["gc".into(), "-p".into(), pid.clone()]),
        ("imports", vec!["imports".into(), "-p".into(), pid.clone()]),
        ("audit", vec!["audit".into(), "-p".into(), pid.clone()]),
        (
            "record",
            vec![
                "record".into(),
                "-p".into(),
                pid.clone(),
                "-o".into(),
                record.display().to_string(),
            ],
        ),
        (
            "stap",
            vec![
                "stap".into(),
                howto
                    .join("tapset-call-hierarchy.stp")
                    .display()
                    .to_string(),
                "-I".into(),
                howto.display().to_string(),
                "-x".into(),
                pid.clone(),
            ],
        ),
        (
            "dtrace",
            vec![
                "dtrace".into(),
                "-q".into(),
                "-s".into(),
                howto.join("call_stack.d").display().to_string(),
                "-p".into(),
                pid.clone(),
            ],
        ),
    ];
    let mut running: Vec<Tool> = tools
        .into_iter()
        .map(|(name, args)| {
            let mut cmd = Command::new(pytap_bin());
            cmd.args(&args);
            if name != "record" {
                cmd.args(["-o", "/dev/null"]);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join(format!("{name}.err"))).unwrap(),
                ))
                .spawn()
                .unwrap_or_else(|e| panic!("spawn pytap {name}: {e}"));
            Tool {
                name,
                child,
                first_minute: None,
                most: 0,
            }
        })
        .collect();
    let started = Instant::now();
    let minute = Duration::from_secs(60).min(soak / 4);
    while started.elapsed() < soak {
        std::thread::sleep(Duration::from_secs(5).min(soak / 20));
        for tool in &mut running {
            let pid = tool.child.id();
            assert!(
                tool.child.try_wait().unwrap().is_none(),
                "pytap {} ended early: {}",
                tool.name,
                std::fs::read_to_string(dir.join(format!("{}.err", tool.name))).unwrap()
            );
            let Some(now) = rss(pid) else { continue };
            if started.elapsed() >= minute {
                tool.first_minute.get_or_insert(now);
                tool.most = tool.most.max(now);
            }
        }
    }
    assert!(target.is_running(), "the target ended before the soak did");
    let mut grown = Vec::new();
    for tool in &running {
        let first = tool.first_minute.expect("sampled");
        if tool.most > first + FLAT {
            grown.push(format!(
                "{}: {:.1} MiB after the first minute, up to {:.1} MiB",
                tool.name,
                first as f64 / (1 << 20) as f64,
                tool.most as f64 / (1 << 20) as f64
            ));
        }
    }
    // The target ends (its threads made), and every tool with it.
    drop(target);
    for tool in &mut running {
        let deadline = Instant::now() + Duration::from_secs(30);
        while tool.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let err = std::fs::read_to_string(dir.join(format!("{}.err", tool.name))).unwrap();
        assert!(!err.contains("panicked"), "{}: {err}", tool.name);
        assert!(
            !err.contains(" lost in") || err.contains(", 0 lost in"),
            "{}: {err}",
            tool.name
        );
    }
    assert!(grown.is_empty(), "memory grew:\n{}", grown.join("\n"));
}
