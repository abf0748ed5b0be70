//! Argument spec strings: parse, and every parsed spec prints back to a
//! string that parses to the same spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap_elf::{ArgSpec, parse_arg_specs};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(specs) = parse_arg_specs(text) {
            for spec in specs {
                let again = ArgSpec::parse(&spec.to_string()).expect("printed spec parses");
                assert_eq!(again, spec);
            }
        }
    }
});
