//! BTF blobs: any input is a parsed `Btf` or an error, and every question
//! asked of a parsed one is an answer or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap_ebpf::btf::Btf;

/// Paths the seeds (fuzz/seeds/btf: the unit tests' sample blob in both
/// byte orders) can answer, and some they cannot.
const PATHS: [&[&str]; 6] = [
    &["task_struct", "thread", "fsbase"],
    &["task_struct", "y"],
    &["task_struct", "prio"],
    &["task_struct", "ptr", "x"],
    &["old_bits", "hi"],
    &["wide", "x"],
];

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    // Type records are at least 12 bytes, so this stays under 22,000 for
    // the largest input the fuzz script allows.
    for id in 0..=btf.type_count() + 1 {
        let _ = (btf.kind(id), btf.name(id), btf.resolve(id), btf.type_size(id));
    }
    for path in PATHS {
        let _ = (btf.member(path), btf.member_offset(path));
    }
});
