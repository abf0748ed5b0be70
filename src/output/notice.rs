//! Notices: the one-line `pytap: …` messages on stderr (summaries, what
//! pytap did on the user's behalf, what it skipped and why).
//!
//! Every notice goes through [`emit`] (the [`notice!`](crate::notice)
//! macro), which never panics: a closed or full stderr loses the message,
//! never the run or its cleanup (`eprintln!` would panic there).
//!
//! While a full-screen view owns the terminal, notices printed to stderr
//! would be drawn over it: [`hold`] queues them instead; the view shows
//! them on its status line ([`held`]), and whatever is still queued when
//! the hold ends is printed then, so nothing is lost.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;

thread_local! {
    static HELD: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Prints `pytap: {args}` on stderr, or queues it while a view holds
/// notices. Errors writing stderr are ignored.
pub fn emit(args: fmt::Arguments<'_>) {
    let text = args.to_string();
    let queued = HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(queue) => {
            queue.push(text.clone());
            true
        }
        None => false,
    });
    if !queued {
        print_now(&text);
    }
}

fn print_now(text: &str) {
    // After the output handed to a writer thread before it.
    super::sink::settle_all();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "pytap: {text}");
}

/// Queues notices until the returned guard is dropped, which prints them.
#[must_use = "notices are queued only while the guard lives"]
pub fn hold() -> Held {
    HELD.with(|held| {
        held.borrow_mut().get_or_insert_with(Vec::new);
    });
    Held(())
}

/// Runs `f` and returns the notices it made instead of printing them
/// (for printing them later: a run's summary after the tool's last
/// output). A hold around it keeps its queue.
pub fn collect(f: impl FnOnce()) -> Vec<String> {
    let outer = HELD.with(|held| held.borrow_mut().replace(Vec::new()));
    f();
    let made = HELD.with(|held| std::mem::replace(&mut *held.borrow_mut(), outer));
    made.unwrap_or_default()
}

/// Prints (or, under a hold, queues) notices [`collect`] kept.
pub fn emit_all(texts: Vec<String>) {
    for text in texts {
        emit(format_args!("{text}"));
    }
}

/// The notices queued so far (oldest first), without taking them.
pub fn held() -> Vec<String> {
    HELD.with(|held| held.borrow().clone().unwrap_or_default())
}

/// Holds notices while alive (see [`hold`]).
#[derive(Debug)]
pub struct Held(());

impl Held {
    /// Ends the hold now and prints what was queued.
    pub fn release(self) {}
}

impl Drop for Held {
    fn drop(&mut self) {
        let queued = HELD
            .with(|held| held.borrow_mut().take())
            .unwrap_or_default();
        for text in queued {
            print_now(&text);
        }
    }
}

/// `notice!("{n} events")` prints `pytap: 12 events` on stderr (see
/// [`emit`]).
#[macro_export]
macro_rules! notice {
    ($($arg:tt)*) => {
        $crate::output::notice::emit(format_args!($($arg)*))
    };
}

/// Writes `text` to stderr as it is (multi-line compiler messages, a
/// script's `WARNING:` lines); errors writing stderr are ignored.
pub fn raw(text: &str) {
    super::sink::settle_all();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_notices_queue_in_order() {
        let guard = hold();
        emit(format_args!("one {}", 1));
        crate::notice!("two");
        assert_eq!(held(), ["one 1", "two"]);
        guard.release();
        assert!(held().is_empty());
    }
}
