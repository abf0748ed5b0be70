//! The in-process capture's ring: a header and records from any bytes
//! (an agent's file is the target's to write) never panic, and the
//! records stop where a bad one starts; an audit record's payload decodes
//! or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap::capture::ring::{self, Record};

fuzz_target!(|data: &[u8]| {
    let _ = ring::header(data);
    let mut records = ring::records(data);
    let mut defs = 0usize;
    for r in records.by_ref() {
        match r {
            Ok(Record::Def { filename, funcname, .. }) => defs += filename.len() + funcname.len(),
            Ok(Record::Event { .. }) => {}
            Ok(Record::Mark { payload, .. }) => {
                defs += payload.len();
                // An audit payload decodes or is refused, never panics.
                let _ = ring::audit(payload);
            }
            Err(_) => break,
        }
    }
    assert!(records.consumed() <= data.len());
    assert!(defs <= data.len());
    let _ = ring::audit(data);
});
