//! `pytap list -p` and `pytap info -p` on running processes.

use std::process::Command;

use crate::harness::{
    ChildGuard, embed_program, pytap, require_kernel, spawn_waiting_python, system_libpython,
    system_python,
};

#[test]
fn list_a_running_python_with_live_semaphores() {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let python = spawn_waiting_python(&system_python(), "");
    let pid = python.pid().to_string();
    let json = pytap(&["list", "--json", "-p", &pid]).json();
    let modules = json["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 1, "{json}");
    let module = &modules[0];
    assert_eq!(module["path"], "/usr/bin/python3.11");
    assert_eq!(module["pid"].as_u64().unwrap().to_string(), pid);
    assert_eq!(
        module["open_path"],
        format!("/proc/{pid}/root/usr/bin/python3.11")
    );
    let sites = module["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 8);
    // Nothing traces this process: every semaphore reads 0.
    for s in sites {
        assert_eq!(s["semaphore"]["value"], 0, "{s}");
    }
    let text = pytap(&["list", "-p", &pid]).ok().to_string();
    assert!(
        text.starts_with(&format!("pid {pid}: /usr/bin/python3.11 (executable")),
        "{text}"
    );
    assert!(text.lines().nth(1).unwrap().contains("SEM.VALUE"));
}

#[test]
fn list_an_embedding_program_finds_libpython() {
    require_kernel();
    let _exact = crate::harness::exact_counts();
    let mut guard = ChildGuard::spawn(
        Command::new(embed_program())
            .arg("import sys\nprint('ready', flush=True)\nsys.stdin.read()"),
    );
    guard.wait_for_line("ready", std::time::Duration::from_secs(20));
    let pid = guard.pid().to_string();
    let json = pytap(&["list", "--json", "-p", &pid]).json();
    let modules = json["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 1, "{json}");
    let module = &modules[0];
    let lib = system_libpython();
    let canonical = std::fs::canonicalize(&lib).unwrap();
    assert!(
        module["path"] == lib.to_str().unwrap() || module["path"] == canonical.to_str().unwrap(),
        "{}",
        module["path"]
    );
    assert_eq!(module["role"], "library");
    assert_eq!(module["elf_type"], "DYN");
    assert_eq!(module["sites"].as_array().unwrap().len(), 8);
    for s in module["sites"].as_array().unwrap() {
        assert_eq!(s["semaphore"]["value"], 0);
    }
    let info = pytap(&["info", "--json", "-p", &pid]).json();
    assert_eq!(info["role"], "library");
    assert_eq!(info["cpython"], "3.11.2");
    assert_eq!(guard.finish().0, 0);
}

#[test]
fn a_process_that_is_not_python() {
    require_kernel();
    let sleeper = ChildGuard::spawn(Command::new("sleep").arg("30"));
    let pid = sleeper.pid();
    let msg = pytap(&["list", "-p", &pid.to_string()])
        .one_line_error()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "pytap: process {pid} (sleep) is not running Python: none of its mapped files has python markers"
        )
    );
}

#[test]
fn a_process_that_cannot_be_read() {
    require_kernel();
    // pytap as an unprivileged user against root's python: /proc/PID/maps is
    // not readable, and the message says what to do.
    let python = spawn_waiting_python(&system_python(), "");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::harness::pytap_bin())
        .args(["list", "-p", &python.pid().to_string()])
        .output()
        .expect("prerequisite missing: setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(stderr.contains("run pytap as root"), "{stderr}");
}
