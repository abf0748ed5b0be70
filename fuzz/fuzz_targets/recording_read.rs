//! Recordings: reading any bytes as a recording, and exporting what reads
//! as folded stacks through the timeline, never panics (a bad file is an
//! error, a cut one ends early). Inputs without the header get one, so the
//! record parser is what the fuzzer explores.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap::export::folded::FoldedSink;
use pytap::export::timeline::Timeline;
use pytap::export::Weight;
use pytap::recording::format;
use pytap::recording::read::Reader;

fuzz_target!(|data: &[u8]| {
    let mut bytes = format::header().to_vec();
    bytes.extend_from_slice(data);
    let Ok(mut reader) = Reader::new(&bytes[..]) else {
        return;
    };
    let mut sink = FoldedSink::new(Box::new(std::io::sink()), Weight::Time, false);
    let mut timeline = Timeline::new(&mut sink);
    while let Ok(true) = reader.advance() {
        if let Some(event) = reader.event() {
            let _ = timeline.event(&event, &reader.names.borrow(), &reader.strings);
        }
    }
    let _ = timeline.finish(&reader.strings);
});
