//! The names of the traced threads as of each event: SystemTap's
//! `execname()`, the kernel's per-thread `comm`, at the event's time.
//!
//! Names are read once from `/proc` when a process is attached, then
//! learnt from the kernel as they change ([`crate::engine::codegen::task`]:
//! renames and execs arrive through the ring buffer in order with the
//! same thread's events), never read again per event. So a call made
//! before `prctl(PR_SET_NAME)` keeps the old name, and the lines before an
//! exec keep the program that made them.
//!
//! A thread seen for the first time without a rename of its own has the
//! name it was created with; pytap does not see thread creation, so it
//! takes the process's (its main thread's) name of the moment, which is
//! what a thread inherits from the main thread.

use std::collections::HashMap;

/// Names per thread and per process (pure: fed by the run loop).
#[derive(Debug, Default)]
pub struct TaskNames {
    threads: HashMap<u32, (u32, String), foldhash::fast::FixedState>,
    processes: HashMap<u32, String, foldhash::fast::FixedState>,
    /// Threads found gone at the last [`TaskNames::prune`].
    gone: Vec<u32>,
}

impl TaskNames {
    /// The names of a process's threads when it is attached: `(tid, comm)`
    /// pairs, the main thread's (tid == pid) among them.
    pub fn learn_process(&mut self, pid: u32, threads: Vec<(u32, String)>) {
        for (tid, comm) in threads {
            self.set(pid, tid, comm);
        }
    }

    /// A thread took a new name.
    pub fn renamed(&mut self, pid: u32, tid: u32, comm: String) {
        self.set(pid, tid, comm);
    }

    /// The process executed a new program: its other threads are gone and
    /// the main thread (now `pid`) has the new program's name.
    pub fn executed(&mut self, pid: u32, comm: String) {
        self.threads.retain(|_, (p, _)| *p != pid);
        self.set(pid, pid, comm);
    }

    /// A thread ended (its last event came before): its name goes. A
    /// main thread's stays, as the process's name (for the summary's
    /// "exited" lines).
    pub fn exited(&mut self, pid: u32, tid: u32) {
        if tid != pid {
            self.threads.remove(&tid);
        }
    }

    fn set(&mut self, pid: u32, tid: u32, comm: String) {
        if tid == pid {
            self.processes.insert(pid, comm.clone());
        }
        self.threads.insert(tid, (pid, comm));
    }

    /// The name of thread `tid` of process `pid` now (`python` when nothing
    /// is known, as SystemTap's HOWTO output shows it).
    pub fn comm(&self, pid: u32, tid: u32) -> &str {
        match self.threads.get(&tid) {
            Some((p, comm)) if *p == pid => comm,
            _ => self.process(pid).unwrap_or("python"),
        }
    }

    /// Forgets threads that `alive` said were gone at this call and at the
    /// one before: a thread's last events are drained long before (the run
    /// loop prunes every few seconds), and a program that keeps starting
    /// named threads (3.14+ names every Python thread) does not grow the
    /// table without bound.
    pub fn prune(&mut self, alive: impl Fn(u32, u32) -> bool) {
        let gone: Vec<u32> = self
            .threads
            .iter()
            .filter(|(tid, (pid, _))| !alive(*pid, **tid))
            .map(|(tid, _)| *tid)
            .collect();
        for tid in self.gone.iter().filter(|t| gone.contains(t)) {
            if let Some((pid, _)) = self.threads.remove(tid)
                && pid == *tid
            {
                self.processes.remove(&pid);
            }
        }
        self.gone = gone;
    }

    /// How many threads have a name of their own.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether no thread has a name of its own.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// The name of process `pid` (its main thread) now, if known.
    pub fn process(&self, pid: u32) -> Option<&str> {
        self.processes.get(&pid).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_change_when_the_kernel_says() {
        let mut n = TaskNames::default();
        n.learn_process(10, vec![(10, "python3.11".into()), (11, "worker".into())]);
        assert_eq!(n.comm(10, 10), "python3.11");
        assert_eq!(n.comm(10, 11), "worker");
        // A thread pytap has not seen named takes the process's name.
        assert_eq!(n.comm(10, 12), "python3.11");
        n.renamed(10, 10, "renamed".into());
        assert_eq!(n.comm(10, 10), "renamed");
        assert_eq!(n.comm(10, 12), "renamed");
        assert_eq!(n.comm(10, 11), "worker");
        // An exec ends every other thread.
        n.executed(10, "true".into());
        assert_eq!(n.comm(10, 11), "true");
        assert_eq!(n.process(10), Some("true"));
        // A recycled thread id in another process does not inherit a name.
        n.renamed(20, 20, "other".into());
        assert_eq!(n.comm(20, 10), "other");
        assert_eq!(n.comm(30, 30), "python");
    }

    #[test]
    fn threads_gone_twice_are_forgotten() {
        let mut n = TaskNames::default();
        n.learn_process(10, vec![(10, "main".into()), (11, "worker".into())]);
        let alive = |_: u32, tid: u32| tid == 10;
        n.prune(alive);
        assert_eq!(n.len(), 2, "gone once: kept");
        n.prune(alive);
        assert_eq!(n.len(), 1);
        assert_eq!(n.comm(10, 11), "main");
        assert_eq!(n.comm(10, 10), "main");
    }
}
