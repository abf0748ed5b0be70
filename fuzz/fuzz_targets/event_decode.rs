//! Ring-buffer records: decoding any bytes as an event or a task record
//! (a rename or an exec), and decoding any audit record's arguments with
//! every CPython object layout, never panics; neither does naming a
//! record sent without names, whatever came before it. The kind byte is
//! biased so every decoder path is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap::cpython::PyVersion;
use pytap::cpython::objects::ObjectLayout;
use pytap::engine::abi::{self, off};
use pytap::engine::decode::{Body, decode, task};
use pytap::engine::names::SentNames;

fuzz_target!(|data: &[u8]| {
    let mut record = data.to_vec();
    if record.len() >= off::HEADER_SIZE {
        // Bias the kind towards real ones (1..=8, and the two task kinds)
        // so the bodies are exercised.
        record[off::KIND] = match record[off::KIND] % 11 {
            9 => abi::TASK_RENAME as u8,
            10 => abi::TASK_EXEC as u8,
            k => k,
        };
        record[off::KIND + 1] = 0;
    }
    if let Some(Ok(t)) = task(&record) {
        let _ = t.comm.map(|c| c.len());
    }
    if let Ok(event) = decode(&record) {
        // The same record as the full one, then as a lean one naming it.
        let mut names = SentNames::default();
        let _ = names.resolve(event.clone());
        let mut lean = record.clone();
        lean[off::FLAGS] |= abi::FLAG_NAMED_BEFORE as u8;
        if let Ok(lean) = decode(&lean) {
            let _ = names.resolve(lean);
        }
        if let Body::Audit(audit) = event.body {
            for minor in [8, 9, 10, 11, 12, 13, 14, 15] {
                if let Some(layout) = ObjectLayout::for_version(PyVersion::new(3, minor, 0)) {
                    if let Some(args) = audit.args(&layout) {
                        for value in &args.values {
                            let _ = value.to_string();
                        }
                    }
                }
            }
        }
    }
});
