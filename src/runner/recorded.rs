//! A recording as an [`EventSource`]: its events of the tool's markers, in
//! recorded order, and its threads' ends in their places. Their context
//! (the [`Reader`]) is the recording's: thread names as of each event,
//! strings and audit arguments as they were recorded.

use std::cell::Ref;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pytap_sys::process::ExitStatus;

use super::source::{Each, EventSource, Item};
use crate::cpython::Marker;
use crate::cpython::objects::ObjectLayout;
use crate::engine::abi::KindMarker;
use crate::engine::decode::Event;
use crate::engine::recover::Recovery;
use crate::engine::session::Session;
use crate::engine::source::Source;
use crate::engine::tasks::TaskNames;
use crate::recording::format::Meta;
use crate::recording::read::Reader;

/// What a consumer learns about replayed events: the thread names as of
/// each event (the recording's); strings and audit arguments are as they
/// were recorded.
impl<R> Source for Reader<R> {
    fn tasks(&self) -> Ref<'_, TaskNames> {
        self.names.borrow()
    }

    fn recover(&self, _: &mut Recovery, _: &Event<'_>, _: u64) -> Option<Vec<u8>> {
        // Recovered when recorded; what stayed unreadable stays so.
        None
    }

    fn layout(&self, _: &Event<'_>) -> Option<ObjectLayout> {
        // Audit arguments were decoded when recorded.
        None
    }

    fn session(&self) -> Option<&Session> {
        None
    }
}

/// Opens a recording for reading, with a clear error for what is not one.
pub fn open(path: &Path) -> Result<Reader<BufReader<File>>> {
    if !path.exists() && path.to_str().is_some_and(|p| p.parse::<f64>().is_ok()) {
        // `top -i 2` from before -i was a recording everywhere.
        bail!(
            "-i {}: no such recording (-i FILE reads a recording; top's interval is --interval SECONDS)",
            path.display()
        );
    }
    let file = File::open(path).with_context(|| path.display().to_string())?;
    Reader::new(BufReader::with_capacity(1 << 16, file)).with_context(|| path.display().to_string())
}

/// The markers a recording asked for (its `start` metadata).
pub fn recorded_markers(start: Option<&Meta>) -> Option<BTreeSet<Marker>> {
    match start {
        Some(Meta::Start { markers, .. }) => Some(
            markers
                .iter()
                .filter_map(|m| Marker::from_note_name(m))
                .collect(),
        ),
        _ => None,
    }
}

/// How the recorded run ended, from its `end` metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordedEnd {
    /// Events lost when it was recorded.
    pub lost: u64,
    /// Records that did not decode when it was recorded.
    pub malformed: u64,
    /// How the recorded command ended.
    pub status: Option<ExitStatus>,
}

/// A recording, read front to back.
#[derive(Debug)]
pub struct Recorded {
    reader: Reader<BufReader<File>>,
    path: PathBuf,
    markers: BTreeSet<Marker>,
    strict: bool,
    checked: bool,
    done: bool,
}

impl Recorded {
    /// The recording at `path`, handing out the events of `markers`. With
    /// `strict` (the tool or the user named its markers), a marker the
    /// recording did not record is an error at the first read.
    pub fn open(path: &Path, markers: &BTreeSet<Marker>, strict: bool) -> Result<Recorded> {
        Ok(Recorded {
            reader: open(path)?,
            path: path.to_path_buf(),
            markers: markers.clone(),
            strict,
            checked: false,
            done: false,
        })
    }

    /// The recording's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the whole recording has been read.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The recording stopped mid-record or without its `end` record.
    pub fn cut_short(&self) -> bool {
        self.reader.cut_short
    }

    /// How the recorded run ended (zeros when the recording does not say).
    pub fn end(&self) -> RecordedEnd {
        match &self.reader.end {
            Some(Meta::End {
                lost,
                malformed,
                status,
                signal,
                ..
            }) => RecordedEnd {
                lost: *lost,
                malformed: *malformed,
                status: match (status, signal) {
                    (_, Some(s)) => Some(ExitStatus::Signal(*s)),
                    (Some(c), None) => Some(ExitStatus::Code(*c)),
                    (None, None) => None,
                },
            },
            _ => RecordedEnd::default(),
        }
    }

    /// A marker the recording did not record is an error, with `strict`.
    fn check_markers(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.checked, true) {
            return Ok(());
        }
        if let Some(Meta::Start {
            profile: Some(_),
            markers,
            ..
        }) = &self.reader.start
            && markers.is_empty()
        {
            bail!(
                "{} holds sampled stacks (pytap record --profile), no events: read it with \
                 pytap profile -i or pytap export -i",
                self.path.display()
            );
        }
        let Some(recorded) = recorded_markers(self.reader.start.as_ref()) else {
            return Ok(());
        };
        let missing: Vec<&str> = self
            .markers
            .iter()
            .filter(|m| !recorded.contains(m))
            .map(|m| m.name())
            .collect();
        if self.strict && !missing.is_empty() {
            let had: Vec<&str> = recorded.iter().map(|m| m.name()).collect();
            bail!(
                "{} recorded {} only: it has no {} events (record them with -m)",
                self.path.display(),
                had.join(", "),
                missing.join(", ")
            );
        }
        Ok(())
    }

    /// The threads that ended before the current event (or the end).
    fn hand_out_ended(&mut self, each: &mut Each<'_>) -> Result<()> {
        let ended = std::mem::take(&mut self.reader.ended);
        for (pid, tid, exec) in ended {
            // (Only an event asks to stop: an end is always told.)
            let _: ControlFlow<()> = each(Item::Ended { pid, tid, exec }, &self.reader)?;
        }
        Ok(())
    }
}

impl EventSource for Recorded {
    /// The rest of the recording, or until `each` stops (`until` does not
    /// apply: everything recorded is settled).
    fn read(&mut self, _until: u64, _last: bool, each: &mut Each<'_>) -> Result<()> {
        while !self.done {
            if !self
                .reader
                .advance()
                .with_context(|| self.path.display().to_string())?
            {
                self.done = true;
                break;
            }
            self.check_markers()?;
            self.hand_out_ended(each)?;
            let Some(event) = self.reader.event() else {
                // A sample: the event views have no use for it.
                continue;
            };
            if !self.markers.contains(&event.header.kind.marker()) {
                continue;
            }
            if each(Item::Event(&event), &self.reader)?.is_break() {
                return Ok(());
            }
        }
        // Threads that ended after the last event.
        self.hand_out_ended(each)?;
        self.check_markers()
    }

    fn hands_out_records(&self) -> bool {
        false
    }

    fn context(&self) -> &dyn Source {
        &self.reader
    }
}
