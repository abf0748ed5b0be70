//! The loop's merge, task records, stops and ticks, on sources made in
//! memory and on a recording written by the recorder: no kernel, no root.

use std::cell::{Ref, RefCell};
use std::collections::BTreeSet;

use super::*;
use crate::cpython::Marker;
use crate::cpython::objects::ObjectLayout;
use crate::engine::abi::{self, EventKind, off};
use crate::engine::decode::{Body, Header, RawStr, StrRef, StrState};
use crate::engine::recover::Recovery;
use crate::engine::session::Session;
use crate::engine::tasks::TaskNames;
use crate::recording::format::Meta;
use crate::recording::write::Recorder;
use crate::runner::recorded::Recorded;
use crate::runner::source::Each;

/// The context of the sources made here.
#[derive(Default)]
struct Names(RefCell<TaskNames>);

impl Source for Names {
    fn tasks(&self) -> Ref<'_, TaskNames> {
        self.0.borrow()
    }
    fn recover(&self, _: &mut Recovery, _: &Event<'_>, _: u64) -> Option<Vec<u8>> {
        None
    }
    fn layout(&self, _: &Event<'_>) -> Option<ObjectLayout> {
        None
    }
    fn session(&self) -> Option<&Session> {
        None
    }
}

/// A `gc__start` record as a probe writes it.
fn gc_record(pid: u32, ts: u64) -> Vec<u8> {
    let mut r = vec![0u8; EventKind::GcStart.record_size()];
    r[off::TS..off::TS + 8].copy_from_slice(&ts.to_le_bytes());
    r[off::PID..off::PID + 4].copy_from_slice(&pid.to_le_bytes());
    r[off::TID..off::TID + 4].copy_from_slice(&pid.to_le_bytes());
    r[off::KIND..off::KIND + 2].copy_from_slice(&(EventKind::GcStart as u16).to_le_bytes());
    r
}

/// A thread's exit as the task programs write it.
fn exit_record(pid: u32, tid: u32, ts: u64) -> Vec<u8> {
    let mut r = vec![0u8; off::TASK_SIZE];
    r[off::TS..off::TS + 8].copy_from_slice(&ts.to_le_bytes());
    r[off::PID..off::PID + 4].copy_from_slice(&pid.to_le_bytes());
    r[off::TID..off::TID + 4].copy_from_slice(&tid.to_le_bytes());
    r[off::KIND..off::KIND + 2].copy_from_slice(&abi::TASK_EXIT.to_le_bytes());
    r
}

/// Records, as the kernel's rings hand them out, settled up to `settled`.
struct Records {
    records: Vec<Vec<u8>>,
    next: usize,
    settled: u64,
    names: Names,
}

impl Records {
    fn new(records: Vec<Vec<u8>>, settled: u64) -> Records {
        Records {
            records,
            next: 0,
            settled,
            names: Names::default(),
        }
    }
}

impl EventSource for Records {
    fn read(&mut self, _until: u64, _last: bool, each: &mut Each<'_>) -> Result<()> {
        while let Some(record) = self.records.get(self.next) {
            self.next += 1;
            if each(Item::Record(record), &self.names)?.is_break() {
                break;
            }
        }
        Ok(())
    }
    fn hands_out_records(&self) -> bool {
        true
    }
    fn settled_before(&self) -> u64 {
        self.settled
    }
    fn context(&self) -> &dyn Source {
        &self.names
    }
}

/// Function entries decoded already, as the capture hands them out: each
/// (pid, ts), up to `until`.
struct Entries {
    entries: Vec<(u32, u64)>,
    next: usize,
    names: Names,
}

impl Entries {
    fn new(entries: Vec<(u32, u64)>) -> Entries {
        Entries {
            entries,
            next: 0,
            names: Names::default(),
        }
    }
}

fn entry(pid: u32, ts_ns: u64) -> Event<'static> {
    let name = RawStr {
        bytes: b"f",
        at: StrRef::Code(1),
        state: StrState::Complete,
    };
    Event {
        header: Header {
            ts_ns,
            pid,
            tid: pid,
            kind: EventKind::FunctionEntry,
            cpu: 0,
            site: abi::NO_SITE,
            flags: abi::FLAG_IN_PROCESS,
        },
        body: Body::Function {
            filename: name,
            funcname: name,
            lineno: 1,
        },
    }
}

impl EventSource for Entries {
    fn read(&mut self, until: u64, _last: bool, each: &mut Each<'_>) -> Result<()> {
        while let Some(&(pid, ts)) = self.entries.get(self.next) {
            if ts > until {
                break;
            }
            self.next += 1;
            if each(Item::Event(&entry(pid, ts)), &self.names)?.is_break() {
                break;
            }
        }
        Ok(())
    }
    fn hands_out_records(&self) -> bool {
        false
    }
    fn context(&self) -> &dyn Source {
        &self.names
    }
}

/// Writes down what it is given, one word each.
#[derive(Default)]
struct Log {
    seen: Vec<String>,
    stop_after: Option<usize>,
}

impl Consumer for Log {
    fn event(&mut self, event: &Event<'_>, _: &dyn Source) -> Result<()> {
        let what = match event.header.kind {
            EventKind::GcStart => "gc",
            EventKind::FunctionEntry => "call",
            _ => "other",
        };
        let h = &event.header;
        self.seen.push(format!("{what}:{}@{}", h.pid, h.ts_ns));
        Ok(())
    }
    fn tick(&mut self, source: &dyn Source) -> Result<()> {
        let at = source.clock_ns().map_or("wall".into(), |ns| ns.to_string());
        self.seen.push(format!("tick@{at}"));
        Ok(())
    }
    fn thread_exited(&mut self, pid: u32, tid: u32) -> Result<()> {
        self.seen.push(format!("exit:{pid}/{tid}"));
        Ok(())
    }
    fn finish(&mut self, _: &dyn Source) -> Result<()> {
        self.seen.push("finish".into());
        Ok(())
    }
    fn wants_stop(&self) -> bool {
        self.stop_after.is_some_and(|n| self.seen.len() >= n)
    }
}

#[test]
fn one_source_is_delivered_as_read_whatever_the_time() {
    let mut kernel = Records::new(vec![gc_record(1, 30), gc_record(1, 10)], 0);
    let mut log = Log::default();
    let mut pump = Pump::new(Ticks::None);
    pump.pass(&mut [&mut kernel], &mut log, 0, false).unwrap();
    assert_eq!(log.seen, ["gc:1@30", "gc:1@10"]);
    assert_eq!(pump.events(), 2);
}

#[test]
fn merged_sources_keep_each_process_in_time_order_up_to_the_cutoff() {
    let mut kernel = Records::new(
        vec![
            gc_record(1, 10),
            gc_record(1, 30),
            gc_record(2, 25),
            gc_record(1, 50),
        ],
        u64::MAX,
    );
    let mut capture = Entries::new(vec![(1, 20), (1, 40), (1, 60)]);
    let mut log = Log::default();
    let mut pump = Pump::new(Ticks::None);
    pump.pass(&mut [&mut kernel, &mut capture], &mut log, 45, false)
        .unwrap();
    // Before each captured event, its process's kernel records from
    // before it; then the rest up to the cutoff. 50 and 60 wait.
    assert_eq!(
        log.seen,
        ["gc:1@10", "call:1@20", "gc:1@30", "call:1@40", "gc:2@25"]
    );
    pump.pass(&mut [&mut kernel, &mut capture], &mut log, u64::MAX, true)
        .unwrap();
    assert_eq!(log.seen[5..], ["gc:1@50", "call:1@60"]);
    assert_eq!(pump.events(), 7);
}

#[test]
fn a_record_still_being_written_holds_the_merge_back() {
    // The rings have settled up to 35 only: the capture's event at 40
    // waits, and so does everything of its process after it.
    let mut kernel = Records::new(vec![gc_record(1, 10), gc_record(1, 30)], 35);
    let mut capture = Entries::new(vec![(1, 20), (1, 40)]);
    let mut log = Log::default();
    let mut pump = Pump::new(Ticks::None);
    pump.pass(&mut [&mut kernel, &mut capture], &mut log, 100, false)
        .unwrap();
    assert_eq!(log.seen, ["gc:1@10", "call:1@20", "gc:1@30"]);
}

#[test]
fn a_threads_end_comes_after_its_last_events_in_a_merge() {
    let mut kernel = Records::new(vec![exit_record(1, 1, 50), gc_record(1, 10)], u64::MAX);
    let mut capture = Entries::new(vec![(1, 20), (1, 45)]);
    let mut log = Log::default();
    let mut pump = Pump::new(Ticks::None);
    // The rings hand out the exit first; it waits for the events before it.
    kernel.records.swap(0, 1);
    pump.pass(&mut [&mut kernel, &mut capture], &mut log, u64::MAX, true)
        .unwrap();
    assert_eq!(log.seen, ["gc:1@10", "call:1@20", "call:1@45", "exit:1/1"]);
}

#[test]
fn two_sources_of_records_are_merged_by_time() {
    let mut a = Records::new(vec![gc_record(1, 10), gc_record(1, 40)], u64::MAX);
    let mut b = Records::new(vec![gc_record(1, 20), gc_record(1, 30)], u64::MAX);
    let mut log = Log::default();
    let mut pump = Pump::new(Ticks::None);
    pump.pass(&mut [&mut a, &mut b], &mut log, u64::MAX, true)
        .unwrap();
    assert_eq!(log.seen, ["gc:1@10", "gc:1@20", "gc:1@30", "gc:1@40"]);
}

#[test]
fn two_sources_of_borrowed_events_are_refused() {
    let mut a = Entries::new(vec![(1, 1)]);
    let mut b = Entries::new(vec![(1, 2)]);
    let mut pump = Pump::new(Ticks::None);
    let err = pump
        .pass(&mut [&mut a, &mut b], &mut Log::default(), 0, true)
        .unwrap_err();
    assert!(err.to_string().contains("cannot be merged"), "{err}");
}

#[test]
fn recorded_ticks_fall_on_the_boundaries_the_events_pass() {
    let mut capture = Entries::new(vec![(1, 100), (1, 105), (1, 112), (1, 135)]);
    let mut log = Log::default();
    let mut pump = Pump::new(Ticks::recorded(
        Some(Duration::from_nanos(10)),
        "test".into(),
    ));
    pump.pass(&mut [&mut capture], &mut log, u64::MAX, true)
        .unwrap();
    pump.finish(&mut log, &Names::default()).unwrap();
    assert_eq!(
        log.seen,
        [
            "call:1@100",
            "call:1@105",
            "tick@110",
            "call:1@112",
            "tick@120",
            "tick@130",
            "call:1@135",
            // The interval in progress, at the last event's time.
            "tick@135",
            "finish",
        ]
    );
}

#[test]
fn a_stop_when_asked_ends_the_pass_at_that_event() {
    let mut capture = Entries::new(vec![(1, 1), (1, 2), (1, 3)]);
    let mut log = Log {
        stop_after: Some(2),
        ..Log::default()
    };
    let mut pump = Pump::new(Ticks::None).stop_when_asked();
    let pass = pump
        .pass(&mut [&mut capture], &mut log, u64::MAX, true)
        .unwrap();
    assert!(pass.stopped);
    assert_eq!(log.seen, ["call:1@1", "call:1@2"]);
}

/// A recording of `events` (pid 7), each a gc start or a function entry.
fn recording(events: &[(EventKind, u64)], ended: Option<(u64, u32)>) -> std::path::PathBuf {
    let start = Meta::Start {
        pytap: "test".into(),
        realtime_ns: 1,
        monotonic_ns: 2,
        target: vec!["app.py".into()],
        markers: vec!["gc__start".into(), "function__entry".into()],
        profile: None,
    };
    let mut recorder = Recorder::new(Vec::new(), &start).unwrap();
    let names = Names::default();
    for &(kind, ts) in events {
        let mut event = entry(7, ts);
        event.header.kind = kind;
        event.header.flags = 0;
        if kind == EventKind::GcStart {
            event.body = Body::GcStart { generation: 2 };
        }
        recorder.event(&event, &names).unwrap();
        if ended.is_some_and(|(at, _)| at == ts) {
            recorder.thread_exited(7, ended.unwrap().1).unwrap();
        }
    }
    let end = Meta::End {
        events: events.len() as u64,
        lost: 3,
        malformed: 0,
        reason: "exited".into(),
        status: Some(0),
        signal: None,
        monotonic_ns: 9,
        samples: None,
        without_python: None,
        sampled_ns: None,
    };
    let bytes = recorder.end(&end).unwrap();
    let path = std::env::temp_dir().join(format!(
        "pytap-pump-{}-{}.pytap",
        std::process::id(),
        events.len()
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_recording_is_a_source_with_its_ends_in_place_and_its_markers_only() {
    let path = recording(
        &[
            (EventKind::FunctionEntry, 100),
            (EventKind::GcStart, 104),
            (EventKind::FunctionEntry, 121),
        ],
        Some((104, 9)),
    );
    let only_gc: BTreeSet<Marker> = [Marker::GcStart].into();
    let mut recorded = Recorded::open(&path, &only_gc, true).unwrap();
    let mut log = Log::default();
    let mut pump = Pump::new(Ticks::recorded(
        Some(Duration::from_nanos(10)),
        "test".into(),
    ));
    pump.pass(&mut [&mut recorded], &mut log, u64::MAX, true)
        .unwrap();
    pump.finish(&mut log, recorded.context()).unwrap();
    assert!(recorded.done());
    assert_eq!(recorded.end().lost, 3);
    // The function entries are not this tool's; the thread's end comes
    // where it was recorded, before the next event.
    assert_eq!(log.seen, ["gc:7@104", "exit:7/9", "tick@104", "finish"]);
    // A marker the recording did not record is an error when named.
    let audit: BTreeSet<Marker> = [Marker::Audit].into();
    let mut recorded = Recorded::open(&path, &audit, true).unwrap();
    let err = Pump::new(Ticks::None)
        .pass(&mut [&mut recorded], &mut Log::default(), u64::MAX, true)
        .unwrap_err();
    assert!(err.to_string().contains("it has no audit"), "{err}");
    std::fs::remove_file(&path).unwrap();
}
