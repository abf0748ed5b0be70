//! `pytap list` against readelf and against the bytes of each file.

use std::path::Path;
use std::process::Command;

use crate::harness::{
    fixture, fixtures, patchelf, pytap, readelf_notes, readelf_section, scratch, system_libpython,
    system_python,
};

/// Checks `pytap list --json PATH` against `readelf -n` and the file itself:
/// same sites in the same order with the same pc, base, semaphore and
/// argument spec; each probe offset lands on the `nop` the marker compiles
/// to; each semaphore offset is where `readelf -S` puts it in `.probes`.
#[track_caller]
fn assert_list_matches_readelf(path: &Path) {
    let json = pytap(&["list", "--json", path.to_str().unwrap()]).json();
    let module = &json["modules"][0];
    let sites = module["sites"].as_array().unwrap();
    let notes = readelf_notes(path);
    let python_notes: Vec<_> = notes.iter().filter(|n| n.provider == "python").collect();
    assert!(
        !python_notes.is_empty(),
        "readelf found no python notes in {}",
        path.display()
    );
    assert_eq!(
        sites.len(),
        python_notes.len(),
        "site count for {}",
        path.display()
    );
    let bytes = std::fs::read(path).unwrap();
    let (probes_addr, probes_off) = readelf_section(path, ".probes");
    for (site, note) in sites.iter().zip(python_notes) {
        assert_eq!(site["name"], note.name.as_str());
        assert_eq!(site["provider"], "python");
        assert_eq!(site["pc"], note.location, "{} pc", note.name);
        assert_eq!(site["base"], note.base, "{} base", note.name);
        assert_eq!(site["args"], note.args.as_str(), "{} args", note.name);
        assert_eq!(
            site["semaphore"]["address"], note.semaphore,
            "{} semaphore",
            note.name
        );
        let offset = site["file_offset"].as_u64().unwrap();
        assert_eq!(
            bytes[offset as usize], 0x90,
            "{} offset {offset:#x} is not the marker's nop",
            note.name
        );
        let sem_off = site["semaphore"]["file_offset"].as_u64().unwrap();
        assert_eq!(
            sem_off,
            note.semaphore - probes_addr + probes_off,
            "{} semaphore offset",
            note.name
        );
    }
    // Each marker's site count is the number of notes with its name.
    for site in sites {
        let same = sites.iter().filter(|s| s["name"] == site["name"]).count();
        assert_eq!(site["sites"], same);
    }
}

#[test]
fn every_fixture_interpreter_matches_readelf() {
    for f in fixtures().values() {
        assert_list_matches_readelf(&f.binary);
    }
}

#[test]
fn system_python_and_libpython_match_readelf() {
    assert_list_matches_readelf(&system_python());
    assert_list_matches_readelf(&system_libpython());
}

#[test]
fn libpython_offsets_differ_from_addresses() {
    // libpython3.11.so's data segment is mapped a page above its file
    // offset: a semaphore offset equal to its address would be wrong.
    let json = pytap(&["list", "--json", system_libpython().to_str().unwrap()]).json();
    let module = &json["modules"][0];
    assert_eq!(module["elf_type"], "DYN");
    assert_eq!(module["role"], "library");
    assert_eq!(module["cpython"], "3.11.2");
    for site in module["sites"].as_array().unwrap() {
        let sem = &site["semaphore"];
        assert_eq!(
            sem["address"].as_u64().unwrap() - sem["file_offset"].as_u64().unwrap(),
            0x1000
        );
    }
}

#[test]
fn site_counts_of_multi_site_markers() {
    let counts = |v: &str| {
        let json = pytap(&["list", "--json", fixture(v).binary.to_str().unwrap()]).json();
        let mut c = std::collections::BTreeMap::new();
        for s in json["modules"][0]["sites"].as_array().unwrap() {
            *c.entry(s["name"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        c
    };
    assert_eq!(counts("3.14")["audit"], 5);
    let c315 = counts("3.15");
    assert_eq!(
        (
            c315["audit"],
            c315["import__find__load__start"],
            c315["import__find__load__done"]
        ),
        (4, 2, 2)
    );
    assert_eq!(c315.values().sum::<i32>(), 12);
    assert_eq!(counts("3.13").values().sum::<i32>(), 5);
    assert_eq!(counts("3.9").values().sum::<i32>(), 8);
}

#[test]
fn a_patchelfed_copy_has_shifted_offsets() {
    // Rewrite a copy of Debian's python3.11 the way the 3.13+ fixtures were
    // (a longer interpreter path moves the file contents), then check the
    // new offsets against the new file rather than the old ones.
    let dir = scratch("patchelf");
    let copy = dir.join("python3.11");
    std::fs::copy(system_python(), &copy).unwrap();
    let long_interp = format!("/lib64/{}/../ld-linux-x86-64.so.2", "x".repeat(300));
    let out = Command::new(patchelf())
        .args([
            "--set-interpreter",
            &long_interp,
            "--add-needed",
            "libm.so.6",
        ])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "patchelf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let site_offsets = |p: &Path| -> Vec<(u64, u64)> {
        let json = pytap(&["list", "--json", p.to_str().unwrap()]).json();
        json["modules"][0]["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["file_offset"].as_u64().unwrap(),
                    s["semaphore"]["file_offset"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let before = site_offsets(&system_python());
    let after = site_offsets(&copy);
    assert_ne!(
        before, after,
        "patchelf did not move anything; the test proves nothing"
    );
    assert_list_matches_readelf(&copy);
}

#[test]
fn text_output_is_a_readable_table() {
    let out = pytap(&["list", system_python().to_str().unwrap()]);
    let text = out.ok();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "/usr/bin/python3.11 (executable, ELF EXEC, CPython 3.11.2): 8 markers at 8 sites"
    );
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "MARKER",
            "SITE",
            "PC",
            "OFFSET",
            "SEMAPHORE",
            "SEM.OFFSET",
            "ARGS"
        ]
    );
    let gc = text
        .lines()
        .find(|l| l.starts_with("python:gc__start "))
        .unwrap();
    let cells: Vec<&str> = gc.split_whitespace().collect();
    let json = pytap(&["list", "--json", "/usr/bin/python3.11"]).json();
    let site = json["modules"][0]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gc__start")
        .unwrap()
        .clone();
    assert_eq!(cells[1], "1/1");
    assert_eq!(cells[2], format!("{:#x}", site["pc"].as_u64().unwrap()));
    assert_eq!(
        cells[3],
        format!("{:#x}", site["file_offset"].as_u64().unwrap())
    );
    assert_eq!(cells[6], "-4@112(%rsp)");
}

#[test]
fn an_embedding_program_lists_its_libpython() {
    // The embedding program has no markers of its own; `list` follows its
    // DT_NEEDED to the libpython it would load.
    let embed = crate::harness::embed_program();
    let json = pytap(&["list", "--json", embed.to_str().unwrap()]).json();
    let module = &json["modules"][0];
    let path = std::fs::canonicalize(module["path"].as_str().unwrap()).unwrap();
    assert_eq!(path, std::fs::canonicalize(system_libpython()).unwrap());
    assert_eq!(module["role"], "library");
}
