//! `.note.stapsdt` section bytes: any input is a list of notes or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&align, rest)) = data.split_first() {
        let _ = pytap_elf::parse_stapsdt_notes(rest, u64::from(align));
    }
});
