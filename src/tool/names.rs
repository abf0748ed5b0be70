//! Function names for the aggregating tools: learnt from the full record
//! the kernel sends at each function's first call, looked up by
//! [`CallKey`] for everything after (counts in maps, lean records).

use std::collections::HashMap;

use crate::engine::abi::{CallKey, FLAG_LEAN};
use crate::engine::decode::{Body, Event};
use crate::engine::source::Source;
use crate::model::stack::FuncId;
use crate::output::event::Strings;

/// The key of a function event.
pub fn key_of(event: &Event<'_>) -> Option<CallKey> {
    let Body::Function {
        filename,
        funcname,
        lineno,
    } = &event.body
    else {
        return None;
    };
    Some(CallKey {
        pid: event.header.pid,
        lineno: *lineno,
        filename_ptr: filename.at.key(),
        funcname_ptr: funcname.at.key(),
    })
}

/// Names by key.
#[derive(Debug, Default)]
pub struct FuncNames {
    names: HashMap<CallKey, FuncId>,
    /// String decoding and recovery.
    pub strings: Strings,
}

impl FuncNames {
    /// The function of a function event: from the event itself when it is
    /// a full record (and remembered), from what was learnt when it is lean.
    pub fn resolve(&mut self, event: &Event<'_>, source: &dyn Source) -> Option<(CallKey, FuncId)> {
        let key = key_of(event)?;
        if event.header.flags & FLAG_LEAN != 0 {
            return self.names.get(&key).map(|f| (key, f.clone()));
        }
        let (func, _) = self.strings.func(event, source)?;
        self.names.insert(key, func.clone());
        Some((key, func))
    }

    /// What a key names, if its full record has arrived.
    pub fn get(&self, key: &CallKey) -> Option<&FuncId> {
        self.names.get(key)
    }
}
