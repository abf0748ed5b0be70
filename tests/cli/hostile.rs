//! Bad input gets one clear line on stderr and exit code 2, never a panic.

use std::process::Command;

use crate::harness::{fixture, pytap, scratch, system_python};

#[test]
fn garbage_and_truncated_files() {
    let dir = scratch("hostile-files");
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, b"this is not an ELF file at all\n").unwrap();
    let msg = pytap(&["list", garbage.to_str().unwrap()])
        .one_line_error()
        .to_string();
    assert!(msg.ends_with("garbage: not an ELF file"), "{msg}");

    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    pytap(&["info", empty.to_str().unwrap()]).one_line_error();

    // Debian's python3.11 cut at many points: in the ELF header, in the
    // program headers, in the middle, just before the section headers.
    let bytes = std::fs::read(system_python()).unwrap();
    for cut in [3, 20, 64, 100, 4096, bytes.len() / 2, bytes.len() - 100] {
        let cut_file = dir.join(format!("python-cut-{cut}"));
        std::fs::write(&cut_file, &bytes[..cut]).unwrap();
        for cmd in ["list", "info"] {
            let run = pytap(&[cmd, cut_file.to_str().unwrap()]);
            run.one_line_error();
        }
    }
}

#[test]
fn a_binary_that_is_not_python() {
    let msg = pytap(&["list", "/bin/ls"]).one_line_error().to_string();
    assert_eq!(
        msg,
        "pytap: /bin/ls is not a CPython interpreter or library: it has no python markers and does not link libpython"
    );
}

#[test]
fn a_python_built_without_markers_says_so_and_what_to_do() {
    let dir = scratch("no-markers");
    let stripped = dir.join("python3.11");
    let out = Command::new("objcopy")
        .args(["--remove-section", ".note.stapsdt"])
        .arg(fixture("3.11").binary.as_os_str())
        .arg(&stripped)
        .output()
        .expect("prerequisite missing: objcopy (apt-get install binutils)");
    assert!(out.status.success());
    let msg = pytap(&["info", stripped.to_str().unwrap()])
        .one_line_error()
        .to_string();
    assert!(
        msg.contains("is CPython 3.11.2 built without markers"),
        "{msg}"
    );
    assert!(msg.contains("--with-dtrace"), "{msg}");
    assert!(msg.contains("Debian"), "{msg}");
}

#[test]
fn missing_paths_directories_and_pids() {
    let msg = pytap(&["list", "/nonexistent/python"])
        .one_line_error()
        .to_string();
    assert!(
        msg.contains("cannot read /nonexistent/python: No such file or directory"),
        "{msg}"
    );
    let msg = pytap(&["info", "/usr/bin"]).one_line_error().to_string();
    assert!(msg.contains("not a regular file"), "{msg}");
    // A pid that cannot exist (above the kernel's pid_max limit of 4194304).
    let msg = pytap(&["list", "-p", "4194305"])
        .one_line_error()
        .to_string();
    assert_eq!(msg, "pytap: no process with pid 4194305");
    // A pid that existed and is gone.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id().to_string();
    child.wait().unwrap();
    let msg = pytap(&["info", "-p", &pid]).one_line_error().to_string();
    assert_eq!(msg, format!("pytap: no process with pid {pid}"));
}

#[test]
fn usage_errors_exit_2() {
    let run = pytap(&["list"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("required"), "{}", run.stderr);
    let run = pytap(&["info", "/usr/bin/python3.11", "-p", "1"]);
    assert_eq!(run.code, 2);
}
