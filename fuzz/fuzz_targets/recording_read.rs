//! Recordings: reading any bytes as a recording, and exporting what reads
//! through the timeline into every format (Perfetto, Chrome, speedscope,
//! folded stacks), never panics (a bad file is an error, a cut one ends
//! early). Inputs get the file header, so the record parser is what the
//! fuzzer explores.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap::export::chrome::ChromeSink;
use pytap::export::folded::FoldedSink;
use pytap::export::perfetto::PerfettoSink;
use pytap::export::speedscope::SpeedscopeSink;
use pytap::model::timeline::Timeline;
use pytap::export::Weight;
use pytap::model::slice::Sink;
use pytap::recording::format;
use pytap::recording::read::Reader;

fuzz_target!(|data: &[u8]| {
    let mut bytes = format::header().to_vec();
    bytes.extend_from_slice(data);
    let Ok(mut reader) = Reader::new(&bytes[..]) else {
        return;
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(FoldedSink::new(Box::new(std::io::sink()), Weight::Time, false)),
        Box::new(FoldedSink::new(Box::new(std::io::sink()), Weight::Calls, true)),
        Box::new(PerfettoSink::new(std::io::sink(), true)),
        Box::new(ChromeSink::new(std::io::sink())),
        Box::new(SpeedscopeSink::new(std::io::sink(), "fuzz".into())),
    ];
    let mut timelines: Vec<Timeline<'_>> =
        sinks.iter_mut().map(|s| Timeline::new(s.as_mut())).collect();
    while let Ok(true) = reader.advance() {
        if let Some(event) = reader.event() {
            for t in &mut timelines {
                let _ = t.event(&event, &reader.names.borrow(), &reader.strings);
            }
        }
    }
    for t in timelines {
        let _ = t.finish(&reader.strings);
    }
});
