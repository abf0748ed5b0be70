//! Pairing events with the stacks their programs sent (pure): a gc,
//! import or audit event's program publishes the event's record, then
//! walks the thread's Python stack and sends it to another ring stamped
//! with the event's timestamp (`codegen::event_stack`). The two meet here
//! by thread and timestamp, and every event leaves in the order it came,
//! with its stack, or as one whose stack did not arrive: never stuck, and
//! never given another event's stack.
//!
//! An event's stack may arrive before it (the merge keeps the kernel's
//! records back) or after it (its program was still walking when the
//! rings were read). It is known not to be coming when:
//! - a later record of the same thread was read before the stack ring was
//!   drained: the thread fired again only after the program of the event
//!   had ended, so its stack, if sent, was in the ring by then. The loop
//!   delivers what a drain of the stack ring found before the kernel
//!   records it read before that drain (`runner::pump`), so for the
//!   consumer this is simply: a later event of the same thread, or its
//!   end;
//! - the stack ring was drained [`GRACE_NS`] after the event's timestamp
//!   (a thread that goes quiet): a program runs for microseconds;
//! - the run is over.
//!
//! A stack whose event never comes (a stack from before its process was
//! traced, one that arrived after its event gave up) is counted and
//! dropped.

use std::collections::{BTreeMap, VecDeque};

/// How long after an event's timestamp its stack is surely in the ring
/// (the program that wrote the event walks the stack next: microseconds,
/// unless the CPU is taken from it).
pub const GRACE_NS: u64 = 250_000_000;

/// What an event leaves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paired<S> {
    /// Its stack.
    Stack(S),
    /// It carries a stack, which did not arrive.
    Missing,
    /// It carries none.
    None,
}

#[derive(Debug)]
struct Entry<T, S> {
    pid: u32,
    key: (u32, u64),
    item: T,
    /// `None` while waiting for its stack.
    paired: Option<Paired<S>>,
}

/// Events waiting for their stacks, and stacks waiting for their events.
#[derive(Debug)]
pub struct Pairing<T, S> {
    /// Stacks that came before their event, by (tid, ts), with their pid.
    stacks: BTreeMap<(u32, u64), (u32, S)>,
    /// Every event not handed out yet, in order.
    queue: VecDeque<Entry<T, S>>,
    /// The waiting ones: (tid, ts) → sequence number.
    waiting: BTreeMap<(u32, u64), u64>,
    /// The sequence number of `queue[0]`.
    first: u64,
    /// Events whose stack did not arrive.
    pub missing: u64,
    /// Stacks whose event never came.
    pub orphans: u64,
}

impl<T, S> Default for Pairing<T, S> {
    fn default() -> Self {
        Pairing {
            stacks: BTreeMap::new(),
            queue: VecDeque::new(),
            waiting: BTreeMap::new(),
            first: 0,
            missing: 0,
            orphans: 0,
        }
    }
}

impl<T, S> Pairing<T, S> {
    /// Whether nothing waits to be handed out: an event that carries no
    /// stack may be written at once.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The stack of the event of thread `tid` (process `pid`) at `ts`.
    pub fn stack(&mut self, pid: u32, tid: u32, ts: u64, stack: S) {
        let key = (tid, ts);
        match self.waiting.remove(&key) {
            Some(seq) => {
                let entry = &mut self.queue[(seq - self.first) as usize];
                entry.paired = Some(Paired::Stack(stack));
            }
            None => {
                if self.stacks.insert(key, (pid, stack)).is_some() {
                    self.orphans += 1;
                }
            }
        }
    }

    /// An event of thread `tid` at `ts`: with `carries`, it waits for its
    /// stack (or takes the one that came first); else it waits only for
    /// those before it. Call [`Pairing::settle`] first for an event that
    /// proves the thread's earlier programs are over.
    pub fn event(&mut self, pid: u32, tid: u32, ts: u64, carries: bool, item: T) {
        let key = (tid, ts);
        let paired = match carries {
            false => Some(Paired::None),
            true => self
                .stacks
                .remove(&key)
                .map(|(_, stack)| Paired::Stack(stack)),
        };
        if paired.is_none() {
            self.waiting
                .insert(key, self.first + self.queue.len() as u64);
        }
        self.queue.push_back(Entry {
            pid,
            key,
            item,
            paired,
        });
    }

    /// Thread `tid` fired again at `ts` (a record read before the stack
    /// ring was drained): the stacks of its events before `ts` that have
    /// not arrived never will.
    pub fn settle(&mut self, tid: u32, ts: u64) {
        let waiting: Vec<(u32, u64)> = self
            .waiting
            .range((tid, 0)..(tid, ts))
            .map(|(k, _)| *k)
            .collect();
        for key in waiting {
            self.give_up(key);
        }
        let stale: Vec<(u32, u64)> = self
            .stacks
            .range((tid, 0)..(tid, ts))
            .map(|(k, _)| *k)
            .collect();
        self.orphans += stale.len() as u64;
        for key in stale {
            self.stacks.remove(&key);
        }
    }

    /// Thread `tid` ended: nothing more of it can come.
    pub fn thread_ended(&mut self, tid: u32) {
        self.settle(tid, u64::MAX);
    }

    /// Process `pid` executed a program: nothing more of its old one can come.
    pub fn process_executed(&mut self, pid: u32) {
        let waiting: Vec<(u32, u64)> = self
            .waiting
            .iter()
            .filter(|&(_, &seq)| self.queue[(seq - self.first) as usize].pid == pid)
            .map(|(k, _)| *k)
            .collect();
        for key in waiting {
            self.give_up(key);
        }
        let before = self.stacks.len();
        self.stacks.retain(|_, (p, _)| *p != pid);
        self.orphans += (before - self.stacks.len()) as u64;
    }

    /// The stack ring was drained from `before` (CLOCK_MONOTONIC ns, read
    /// before the drain): events [`GRACE_NS`] older give up.
    pub fn drained(&mut self, before: u64) {
        let late: Vec<(u32, u64)> = self
            .waiting
            .keys()
            .filter(|(_, ts)| ts.saturating_add(GRACE_NS) <= before)
            .copied()
            .collect();
        for key in late {
            self.give_up(key);
        }
    }

    /// The run is over: every waiting event gives up, every stack left is
    /// an orphan.
    pub fn finish(&mut self) {
        let keys: Vec<(u32, u64)> = self.waiting.keys().copied().collect();
        for key in keys {
            self.give_up(key);
        }
        self.orphans += self.stacks.len() as u64;
        self.stacks.clear();
    }

    /// The next event to hand out, in order, once it is paired.
    pub fn pop(&mut self) -> Option<(T, Paired<S>)> {
        self.queue.front()?.paired.as_ref()?;
        let entry = self.queue.pop_front()?;
        self.first += 1;
        Some((entry.item, entry.paired?))
    }

    fn give_up(&mut self, key: (u32, u64)) {
        if let Some(seq) = self.waiting.remove(&key) {
            let entry = &mut self.queue[(seq - self.first) as usize];
            debug_assert_eq!(entry.key, key);
            entry.paired = Some(Paired::Missing);
            self.missing += 1;
        }
    }
}

#[cfg(test)]
mod tests;
