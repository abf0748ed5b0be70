//! Tests of the profile model: counting, the timeline, the functions.
use super::*;

fn py(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: "app.py".into(),
        line,
        kind: FrameKind::Python,
    }
}

#[test]
fn stacks_are_counted_per_thread_and_frames_interned_once() {
    let mut p = Profile::new(Mode::Cpu, 99);
    let main = py("main", 3);
    let work = py("work", 9);
    let (m, w) = (p.intern(main.clone()), p.intern(work));
    assert_eq!(p.intern(main), m);
    let t1 = ThreadKey { pid: 1, tid: 1 };
    let t2 = ThreadKey { pid: 1, tid: 2 };
    p.add(t1, &[w, m], 10, 1000);
    p.add(t1, &[w, m], 10, 2000);
    p.add(t2, &[m], 10, 3000);
    assert_eq!(p.samples(), 3);
    let stacks = p.stacks();
    assert_eq!(stacks.len(), 2);
    assert_eq!(stacks[0].0, t1);
    assert_eq!(
        stacks[0].2,
        Totals {
            samples: 2,
            weight_ns: 20
        }
    );
    assert_eq!(p.frame(stacks[1].1[0]).function.as_ref(), "main");
    assert_eq!(p.threads().count(), 2);
}

fn key(tid: u32) -> ThreadKey {
    ThreadKey { pid: 7, tid }
}

#[test]
fn recursion_counts_once_per_sample_in_total() {
    let mut p = Profile::new(Mode::Cpu, 100);
    let main = p.intern(py("main", 1));
    // Two lines of one function are one function.
    let (fib_a, fib_b) = (p.intern(py("fib", 4)), p.intern(py("fib", 5)));
    let leaf = p.intern(py("leaf", 9));
    p.add(key(1), &[fib_a, fib_b, fib_a, main], 10, 4000);
    p.add(key(1), &[fib_a, fib_b, fib_a, main], 10, 5000);
    p.add(key(1), &[leaf, fib_b, main], 10, 6000);
    p.add(key(2), &[main], 10, 7000);
    // A sample with no frame counts in no function.
    p.add(key(2), &[], 10, 8000);
    let got: Vec<_> = (p.functions().iter())
        .map(|f| (f.function.to_string(), f.own.samples, f.total.samples))
        .collect();
    // Own ties (main, leaf) go to the larger total.
    let want = [("fib", 2, 3), ("main", 1, 4), ("leaf", 1, 1)];
    assert_eq!(got, want.map(|(f, o, t)| (f.to_string(), o, t)));
    let fib = &p.functions()[0];
    assert_eq!((fib.own.weight_ns, fib.total.weight_ns), (20, 30));
    assert_eq!(p.samples(), 5);
    let all = Totals {
        samples: 5,
        weight_ns: 50,
    };
    assert_eq!(p.totals(), all);
}

#[test]
fn functions_sort_by_own_then_total_in_the_unit() {
    let mut p = Profile::new(Mode::Wall, 100);
    let (a, b, c) = (
        p.intern(py("a", 1)),
        p.intern(py("b", 1)),
        p.intern(py("c", 1)),
    );
    // In wall mode time counts: one long sample of `b` outweighs three of `a`.
    p.add(key(1), &[a], 10, 9000);
    p.add(key(1), &[a], 10, 10000);
    p.add(key(1), &[a], 10, 11000);
    p.add(key(1), &[b, c], 1000, 12000);
    p.add(key(1), &[c], 30, 13000);
    assert_eq!(p.unit(), Unit::Nanoseconds);
    let names: Vec<_> = p.functions().iter().map(|f| f.function.clone()).collect();
    assert_eq!(names, ["b".into(), "c".into(), "a".into()] as [Arc<str>; 3]);
    p.mode = Mode::Cpu;
    assert_eq!(p.unit(), Unit::Samples);
    let names: Vec<_> = p.functions().iter().map(|f| f.function.clone()).collect();
    // Own ties (b, c: 1 each) go to the larger total (c: 2).
    assert_eq!(names, ["a".into(), "c".into(), "b".into()] as [Arc<str>; 3]);
}

#[test]
fn the_timeline_keeps_each_threads_order_in_runs() {
    let mut p = Profile::new(Mode::Cpu, 100);
    let (a, b) = (p.intern(py("a", 1)), p.intern(py("b", 2)));
    p.add(key(1), &[a], 10, 14000);
    p.add(key(2), &[b], 10, 15000);
    p.add(key(1), &[a], 10, 16000);
    p.add(key(1), &[b, a], 10, 17000);
    p.add(key(1), &[a], 10, 18000);
    let two = Totals {
        samples: 2,
        weight_ns: 20,
    };
    let one = Totals {
        samples: 1,
        weight_ns: 10,
    };
    let timeline = p.timeline().expect("kept");
    assert_eq!(
        timeline,
        vec![
            (
                key(1),
                vec![(&[a][..], two), (&[b, a][..], one), (&[a][..], one)]
            ),
            (key(2), vec![(&[b][..], one)]),
        ]
    );
}

#[test]
fn the_timeline_is_dropped_whole_past_its_limit() {
    let mut p = Profile::new(Mode::Cpu, 100);
    p.limit_timeline(2);
    let (a, b) = (p.intern(py("a", 1)), p.intern(py("b", 2)));
    p.add(key(1), &[a], 10, 19000);
    p.add(key(1), &[b], 10, 20000);
    assert!(p.timeline().is_some());
    // Repeating the last stack takes no run.
    p.add(key(1), &[b], 10, 21000);
    assert!(p.timeline().is_some());
    p.add(key(1), &[a], 10, 22000);
    assert_eq!(p.timeline(), None);
    // The totals do not depend on it.
    assert_eq!(p.samples(), 4);
    let mut none = Profile::new(Mode::Cpu, 100);
    none.limit_timeline(0);
    none.add(key(1), &[], 10, 23000);
    assert_eq!(none.timeline(), None);
}

#[test]
fn samples_in_time_keep_each_ones_timestamp_and_stack() {
    let mut p = Profile::new(Mode::Cpu, 100);
    let (a, b) = (p.intern(py("a", 1)), p.intern(py("b", 2)));
    // One run of two samples, then another stack, across two threads.
    p.add(key(1), &[a], 10, 50);
    p.add(key(1), &[a], 10, 70);
    p.add(key(2), &[b], 10, 60);
    p.add(key(1), &[b, a], 10, 60);
    let got = p.in_time().expect("kept");
    assert_eq!(
        got,
        vec![
            (50, key(1), &[a][..]),
            (60, key(1), &[b, a][..]),
            (60, key(2), &[b][..]),
            (70, key(1), &[a][..]),
        ]
    );
    p.limit_timeline(0);
    assert_eq!(p.in_time(), None);
}
