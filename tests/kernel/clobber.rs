//! What pytap writes never clobbers what it should not, and what a traced
//! program names never reaches the terminal raw: `record -o` and
//! `export -o` rename only over regular files (a device, a FIFO or a
//! link's target is written through or followed), a write error is an
//! error naming the file, and control characters in function and thread
//! names are escaped in every text output and in the SVG.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{pytap, require_kernel, scratch, script, system_python};

/// A small recording to export.
fn recording(dir: &Path) -> String {
    let out = dir.join("run.pytap").display().to_string();
    let cmd = format!("{} -c pass", system_python().display());
    pytap(&["record", "-o", &out, "-c", &cmd]).ok();
    out
}

fn kind(path: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

#[test]
fn devices_fifos_and_links_are_written_through_not_replaced() {
    require_kernel();
    let dir = scratch("clobber-kinds");
    let run = recording(&dir);
    let cmd = format!("{} -c pass", system_python().display());

    // A character device (the null device's numbers, made here).
    let node = dir.join("null-node");
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "prerequisite missing: mknod (coreutils)"
    );
    pytap(&["record", "-o", node.to_str().unwrap(), "-c", &cmd]).ok();
    assert!(kind(&node).is_char_device(), "record replaced the device");
    pytap(&[
        "export",
        "-i",
        &run,
        "--format",
        "chrome",
        "-o",
        node.to_str().unwrap(),
    ])
    .ok();
    assert!(kind(&node).is_char_device(), "export replaced the device");

    // /dev/full: the write fails, and says so; the device stays.
    for args in [
        vec!["record", "-o", "/dev/full", "-c", &cmd],
        vec![
            "export",
            "-i",
            &run,
            "--format",
            "chrome",
            "-o",
            "/dev/full",
        ],
    ] {
        let r = pytap(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("writing /dev/full: No space left on device"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(kind(Path::new("/dev/full")).is_char_device());
    }

    // A link: its target is replaced, the link stays a link.
    let target = dir.join("real.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink("real.json", &link).unwrap();
    pytap(&[
        "export",
        "-i",
        &run,
        "--format",
        "chrome",
        "-o",
        link.to_str().unwrap(),
    ])
    .ok();
    assert!(kind(&link).is_symlink());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert!(written.is_object() || written.is_array());

    // A FIFO: its reader gets the export, the FIFO stays.
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(&fifo)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        })
    };
    pytap(&[
        "export",
        "-i",
        &run,
        "--format",
        "folded",
        "-o",
        fifo.to_str().unwrap(),
    ])
    .ok();
    let folded = reader.join().unwrap();
    assert!(
        folded.lines().count() > 10 && folded.ends_with('\n'),
        "{folded}"
    );
    assert!(kind(&fifo).is_fifo());

    // A file that cannot be written: one line naming it, exit 2.
    let msg = pytap(&[
        "export",
        "-i",
        &run,
        "--format",
        "folded",
        "-o",
        "/proc/version",
    ])
    .one_line_error()
    .to_string();
    assert!(msg.starts_with("pytap: writing /proc/version: "), "{msg}");
    let dir_msg = pytap(&[
        "export",
        "-i",
        &run,
        "--format",
        "folded",
        "-o",
        dir.to_str().unwrap(),
    ])
    .one_line_error()
    .to_string();
    assert!(dir_msg.ends_with("it is a directory"), "{dir_msg}");
    // Nothing was left beside anything.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["fifo", "link.json", "null-node", "real.json", "run.pytap"]
    );
}

/// A tmpfs of `kib` KiB mounted at `dir`, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, kib: u32) -> SmallDisk {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "prerequisite missing: mounting a tmpfs at {} (mount, as root)",
            dir.display()
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_names_the_file_and_leaves_nothing_hidden() {
    require_kernel();
    let dir = scratch("clobber-full");
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let _disk = SmallDisk::mount(&disk, 256);
    let cmd = format!(
        "{} {} 18 /dev/null",
        system_python().display(),
        script("fib.py")
    );
    let out = disk.join("run.pytap");
    let r = pytap(&["record", "-o", out.to_str().unwrap(), "-c", &cmd]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "writing {}: No space left on device",
            out.display()
        )),
        "{}",
        r.stderr
    );
    std::fs::remove_file(&out).unwrap();
    // An export's recording is pytap's own: it does not stay behind.
    let pftrace = disk.join("run.pftrace");
    let r = pytap(&[
        "record",
        "--format",
        "perfetto",
        "-o",
        pftrace.to_str().unwrap(),
        "-c",
        &cmd,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Bytes a terminal would obey: ESC, BEL, and the C1 CSI (U+009B).
fn raw_controls(text: &str) -> bool {
    text.contains('\x1b') || text.contains('\x07') || text.contains('\u{9b}')
}

#[test]
fn names_with_control_characters_are_escaped_in_text_and_the_svg() {
    require_kernel();
    let dir = scratch("clobber-escapes");
    let cmd = format!(
        "{} {}",
        system_python().display(),
        script("hostile_names.py")
    );
    let shown = "x\\x1b]0;pwned\\x07";
    for args in [
        vec!["flow", "--filter", "hostile_names.py:*", "-c", &cmd],
        vec!["trace", "-m", "function__entry", "-c", &cmd],
        vec!["calls", "-n", "0", "-c", &cmd],
        vec!["top", "--plain", "-n", "0", "-c", &cmd],
    ] {
        let r = pytap(&args);
        let out = r.ok();
        assert!(!raw_controls(out), "{args:?} wrote control characters raw");
        assert!(
            !raw_controls(&r.stderr),
            "{args:?} wrote control characters raw on stderr"
        );
        assert!(out.contains(shown), "{args:?}:\n{out}");
    }
    // flow names the thread as the kernel does: escaped too.
    let flow = pytap(&["flow", "--filter", "hostile_names.py:*", "-c", &cmd]);
    assert!(flow.ok().contains("\\x1b[31m"), "{}", flow.stdout);
    // JSON keeps the name itself (escaped as JSON escapes it).
    let json = pytap(&[
        "trace",
        "-m",
        "function__entry",
        "--format",
        "jsonl",
        "-c",
        &cmd,
    ]);
    let named = json
        .ok()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["funcname"] == "x\x1b]0;pwned\x07")
        .count();
    assert_eq!(named, 3);
    assert!(!raw_controls(&json.stdout));
    // The SVG flame graph and flame chart are well-formed XML.
    let run = dir.join("run.pytap");
    pytap(&["record", "-o", run.to_str().unwrap(), "-c", &cmd]).ok();
    for extra in [&[][..], &["--flame-chart"][..]] {
        let svg = dir.join("flame.svg");
        let mut args = vec!["export", "-i", run.to_str().unwrap(), "--format", "svg"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", svg.to_str().unwrap()]);
        pytap(&args).ok();
        let check = Command::new(system_python())
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1]); print('ok')",
            ])
            .arg(&svg)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&check.stdout),
            "ok\n",
            "{extra:?}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(!raw_controls(&text));
        assert!(text.contains("x\\x1b]0:pwned\\x07"), "{extra:?}");
    }
}
