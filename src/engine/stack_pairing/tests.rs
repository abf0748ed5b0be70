use super::*;

fn drain(p: &mut Pairing<&'static str, &'static str>) -> Vec<(&'static str, Paired<&'static str>)> {
    std::iter::from_fn(|| p.pop()).collect()
}

#[test]
fn a_stack_that_came_first_is_taken_at_once() {
    let mut p = Pairing::default();
    p.stack(1, 10, 100, "s100");
    p.event(1, 10, 100, true, "gc");
    assert_eq!(drain(&mut p), [("gc", Paired::Stack("s100"))]);
    assert!(p.is_empty());
    assert_eq!((p.missing, p.orphans), (0, 0));
}

#[test]
fn an_event_waits_for_its_stack_and_holds_back_what_follows() {
    let mut p = Pairing::default();
    p.event(1, 10, 100, true, "import");
    p.event(1, 11, 150, false, "other thread");
    assert!(
        p.pop().is_none(),
        "the import waits, and what came after it"
    );
    assert!(!p.is_empty());
    p.stack(1, 10, 100, "s100");
    assert_eq!(
        drain(&mut p),
        [
            ("import", Paired::Stack("s100")),
            ("other thread", Paired::None)
        ]
    );
}

#[test]
fn a_later_record_of_the_thread_settles_a_missing_stack() {
    let mut p = Pairing::default();
    p.event(1, 10, 100, true, "audit");
    // Another thread's event proves nothing about thread 10.
    p.settle(11, 500);
    p.event(1, 11, 500, false, "t11");
    assert!(p.pop().is_none());
    p.settle(10, 200);
    p.event(1, 10, 200, true, "gc");
    p.stack(1, 10, 200, "s200");
    assert_eq!(
        drain(&mut p),
        [
            ("audit", Paired::Missing),
            ("t11", Paired::None),
            ("gc", Paired::Stack("s200"))
        ]
    );
    assert_eq!(p.missing, 1);
}

#[test]
fn a_quiet_thread_gives_up_after_the_grace() {
    let mut p = Pairing::default();
    p.event(1, 10, 1_000, true, "audit");
    p.drained(1_000 + GRACE_NS - 1);
    assert!(p.pop().is_none());
    p.drained(1_000 + GRACE_NS);
    assert_eq!(drain(&mut p), [("audit", Paired::Missing)]);
    // The stack that comes too late is an orphan, never another's.
    p.stack(1, 10, 1_000, "late");
    p.event(1, 10, 2_000, true, "next");
    p.stack(1, 10, 2_000, "s2000");
    assert_eq!(drain(&mut p), [("next", Paired::Stack("s2000"))]);
    p.finish();
    assert_eq!((p.missing, p.orphans), (1, 1));
}

#[test]
fn ends_and_execs_settle_their_threads() {
    let mut p = Pairing::default();
    p.event(1, 10, 100, true, "a");
    p.event(2, 20, 110, true, "b");
    p.event(2, 21, 120, true, "c");
    p.thread_ended(10);
    assert_eq!(drain(&mut p), [("a", Paired::Missing)]);
    p.stack(2, 21, 120, "s120");
    p.process_executed(2);
    assert_eq!(
        drain(&mut p),
        [("b", Paired::Missing), ("c", Paired::Stack("s120"))]
    );
    p.stack(3, 30, 90, "before its process was traced");
    p.settle(30, 95);
    assert_eq!((p.missing, p.orphans), (2, 1));
}

#[test]
fn the_end_lets_everything_go() {
    let mut p = Pairing::default();
    p.stack(1, 10, 50, "never claimed");
    p.event(1, 10, 100, true, "a");
    p.event(1, 10, 120, false, "b");
    p.finish();
    assert_eq!(drain(&mut p), [("a", Paired::Missing), ("b", Paired::None)]);
    assert_eq!((p.missing, p.orphans), (1, 1));
}
