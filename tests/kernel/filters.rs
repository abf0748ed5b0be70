//! What flow's filters match: a file part without `/` is the file's base
//! name, a filter that matched nothing says so, and a path too long for
//! the kernel's buffer keeps its end, so filters on the file name still
//! match.

use crate::harness::{fixture, pytap, require_kernel, scratch, script};

#[test]
fn a_file_part_without_a_slash_matches_the_base_name() {
    require_kernel();
    let py = fixture("3.9").binary.display().to_string();
    let run = pytap(&[
        "flow",
        "--within",
        "calls.py:middle",
        "--",
        &py,
        &script("calls.py"),
    ]);
    let text = run.ok();
    // outer(3) on the main thread and outer(2) on the worker: five calls
    // of middle, each with the leaf it calls.
    assert_eq!(
        text.lines().filter(|l| l.contains("=> middle in")).count(),
        5,
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("=> leaf in")).count(),
        5,
        "{text}"
    );
    assert!(
        !run.stderr.contains("matched no function"),
        "{}",
        run.stderr
    );
    // A pattern with a slash is still a whole-path glob.
    let run = pytap(&[
        "flow",
        "--within",
        "tests/calls.py:middle",
        "--",
        &py,
        &script("calls.py"),
    ]);
    assert_eq!(run.ok(), "");
    assert!(
        run.stderr.contains(
            "pytap: flow: --within 'tests/calls.py:middle' matched no function during the run"
        ),
        "{}",
        run.stderr
    );
    let run = pytap(&[
        "flow",
        "--filter",
        "nosuchfunc",
        "--",
        &py,
        &script("calls.py"),
    ]);
    assert!(
        run.stderr
            .contains("pytap: flow: --filter 'nosuchfunc' matched no function during the run"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_path_longer_than_the_buffer_keeps_its_file_name() {
    require_kernel();
    let mut dir = scratch("deep-path");
    for _ in 0..14 {
        dir = dir.join("abcdefghijklmnopqrstuvwxyz0123456789abcdefghij");
    }
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deep.py");
    assert!(path.as_os_str().len() > 600);
    std::fs::write(&path, "def leaf():\n    return 1\n\nleaf()\n").unwrap();
    for version in ["3.9", "3.11", "3.15"] {
        let py = fixture(version).binary.display().to_string();
        // The markers' buffer (3.11's default is the agent, which has none).
        let run = pytap(&[
            "flow",
            "--capture",
            "markers",
            "--filter",
            "*deep.py:*",
            "--",
            &py,
            path.to_str().unwrap(),
        ]);
        let text = run.ok();
        let entry = text
            .lines()
            .find(|l| l.contains("=> leaf in"))
            .unwrap_or_else(|| panic!("{version}: {text}"));
        assert!(entry.ends_with("/deep.py:1"), "{version}: {entry}");
        assert!(entry.contains(" in …"), "{version}: {entry}");
        let run = pytap(&[
            "flow",
            "--capture",
            "markers",
            "--filter",
            "deep.py:leaf",
            "--",
            &py,
            path.to_str().unwrap(),
        ]);
        assert_eq!(run.ok().lines().count(), 2, "{version}");
    }
}
