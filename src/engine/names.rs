//! Names for the function records the kernel sent without them
//! ([`crate::engine::abi::FLAG_NAMED_BEFORE`]; why that is exact is in
//! [`crate::engine::codegen::named`]): every full function record leaves
//! its names here, by process and pointers, and a lean one takes those of
//! the latest full record with the same process and pointers. Records
//! must come in ring-buffer order per process, as the run loop delivers
//! them. An exec forgets the process's names (its pointers now mean
//! nothing).

use std::cell::Cell;
use std::collections::HashMap;

use crate::engine::abi::FLAG_NAMED_BEFORE;
use crate::engine::decode::{Body, Event, RawStr, StrRef, StrState};

/// One string as sent.
#[derive(Debug, Clone)]
struct SentStr {
    bytes: Box<[u8]>,
    state: StrState,
}

impl SentStr {
    fn of(raw: &RawStr<'_>) -> SentStr {
        SentStr {
            bytes: raw.bytes.into(),
            state: raw.state,
        }
    }

    fn same_as(&self, raw: &RawStr<'_>) -> bool {
        self.state == raw.state && *self.bytes == *raw.bytes
    }

    fn raw(&self, at: StrRef) -> RawStr<'_> {
        RawStr {
            bytes: &self.bytes,
            at,
            state: self.state,
        }
    }
}

/// Names by (process, filename pointer, funcname pointer). Looked up on
/// every function event, hence foldhash rather than SipHash (the keys are
/// the kernel's, not an attacker's).
type Names = HashMap<(u32, StrRef, StrRef), (SentStr, SentStr), foldhash::fast::FixedState>;

/// The names each process sent, by pointers.
#[derive(Debug, Default)]
pub struct SentNames {
    names: Names,
    /// Lean records no full record had named (none expected: a probe only
    /// sends lean after its full record is in the ring buffer).
    pub unnamed: Cell<u64>,
}

impl SentNames {
    /// Learns from a full function record, or names a lean one (clearing
    /// its flag); other events pass unchanged. A lean record nothing named
    /// keeps empty, unreadable names and is counted in [`Self::unnamed`].
    pub fn resolve<'a>(&'a mut self, mut event: Event<'a>) -> Event<'a> {
        let pid = event.header.pid;
        let lean = event.header.flags & FLAG_NAMED_BEFORE != 0;
        let Body::Function {
            filename, funcname, ..
        } = &mut event.body
        else {
            return event;
        };
        let key = (pid, filename.at, funcname.at);
        if !lean {
            match self.names.get_mut(&key) {
                Some((f, n)) if f.same_as(filename) && n.same_as(funcname) => {}
                Some(slot) => *slot = (SentStr::of(filename), SentStr::of(funcname)),
                None => {
                    self.names
                        .insert(key, (SentStr::of(filename), SentStr::of(funcname)));
                }
            }
            return event;
        }
        let this: &'a SentNames = self;
        match this.names.get(&key) {
            Some((f, n)) => {
                *filename = f.raw(key.1);
                *funcname = n.raw(key.2);
            }
            None => this.unnamed.set(this.unnamed.get() + 1),
        }
        event.header.flags &= !FLAG_NAMED_BEFORE;
        event
    }

    /// A process executed a program: its pointers mean nothing now.
    pub fn executed(&mut self, pid: u32) {
        self.names.retain(|key, _| key.0 != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::abi::EventKind;
    use crate::engine::decode::Header;

    fn event(
        pid: u32,
        kind: EventKind,
        lean: bool,
        ptrs: (u64, u64),
        names: (&'static str, &'static str),
    ) -> Event<'static> {
        let raw = |bytes: &'static str, ptr| RawStr {
            bytes: if lean { b"" } else { bytes.as_bytes() },
            at: StrRef::Address(ptr),
            state: if lean {
                StrState::Unreadable(0)
            } else {
                StrState::Complete
            },
        };
        Event {
            header: Header {
                ts_ns: 1,
                pid,
                tid: pid,
                kind,
                cpu: 0,
                site: 0,
                flags: if lean { FLAG_NAMED_BEFORE } else { 0 },
            },
            body: Body::Function {
                filename: raw(names.0, ptrs.0),
                funcname: raw(names.1, ptrs.1),
                lineno: 3,
            },
        }
    }

    fn names(e: &Event<'_>) -> (String, String, StrState, u16) {
        let Body::Function {
            filename, funcname, ..
        } = &e.body
        else {
            panic!("not a function event")
        };
        (
            String::from_utf8_lossy(filename.bytes).into(),
            String::from_utf8_lossy(funcname.bytes).into(),
            funcname.state,
            e.header.flags,
        )
    }

    #[test]
    fn a_lean_record_takes_the_latest_full_names_of_its_process_and_pointers() {
        let mut sent = SentNames::default();
        let entry = EventKind::FunctionEntry;
        let ret = EventKind::FunctionReturn;
        sent.resolve(event(1, entry, false, (10, 20), ("a.py", "f")));
        sent.resolve(event(2, entry, false, (10, 20), ("b.py", "g")));
        let got = sent.resolve(event(1, ret, true, (10, 20), ("", "")));
        assert_eq!(
            names(&got),
            ("a.py".into(), "f".into(), StrState::Complete, 0)
        );
        // The same pointers read again with other strings (reused memory):
        // the latest wins.
        sent.resolve(event(1, entry, false, (10, 20), ("c.py", "h")));
        let got = sent.resolve(event(1, EventKind::Line, true, (10, 20), ("", "")));
        assert_eq!(names(&got).0, "c.py");
        let got = sent.resolve(event(2, ret, true, (10, 20), ("", "")));
        assert_eq!(names(&got).1, "g");
        assert_eq!(sent.unnamed.get(), 0);
    }

    #[test]
    fn an_exec_forgets_and_an_unknown_lean_record_is_counted() {
        let mut sent = SentNames::default();
        sent.resolve(event(
            1,
            EventKind::FunctionEntry,
            false,
            (10, 20),
            ("a.py", "f"),
        ));
        sent.executed(1);
        let got = sent.resolve(event(
            1,
            EventKind::FunctionReturn,
            true,
            (10, 20),
            ("", ""),
        ));
        let (file, func, state, flags) = names(&got);
        assert_eq!((file.as_str(), func.as_str(), flags), ("", "", 0));
        assert_eq!(state, StrState::Unreadable(0));
        assert_eq!(sent.unnamed.get(), 1);
        // Full records of other kinds and other events pass unchanged.
        let full = event(1, EventKind::FunctionReturn, false, (30, 40), ("d.py", "k"));
        assert_eq!(sent.resolve(full.clone()), full);
    }
}
