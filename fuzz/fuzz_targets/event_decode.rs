//! Ring-buffer records: decoding any bytes as an event, and decoding any
//! audit record's arguments with every CPython object layout, never panics.
//! The first two input bytes pick the record kind so every decoder path is
//! reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap::cpython::PyVersion;
use pytap::cpython::objects::ObjectLayout;
use pytap::engine::abi::off;
use pytap::engine::decode::{Body, decode};

fuzz_target!(|data: &[u8]| {
    let mut record = data.to_vec();
    if record.len() >= off::HEADER_SIZE {
        // Bias the kind towards real ones (1..=8) so the bodies are exercised.
        record[off::KIND] = record[off::KIND] % 9;
        record[off::KIND + 1] = 0;
    }
    if let Ok(event) = decode(&record) {
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
