//! The end of a run on stderr: why it ended, what was seen and lost, what
//! pytap cost; and the exit code scripts rely on.

use crate::engine::consumer::{Consumer, End};
use crate::error::ExitCode;
use crate::notice;
use crate::runner::live::{Attached, Outcome};

/// The end-of-run report, on stderr: why it ended, events seen and lost.
pub fn report(attached: &Attached, outcome: &Outcome, consumer: &dyn Consumer) {
    let followed = &attached.followed;
    match &outcome.end {
        End::Exited {
            status: Some(status),
        } => {
            let program = followed
                .root()
                .map(|(p, _)| p)
                .filter(|p| !p.is_empty())
                .unwrap_or("the traced command");
            // `exited with status 3`, `was killed by SIGSEGV`.
            notice!("{program} {status}");
        }
        End::Exited { status: None } => notice!("the traced processes exited"),
        End::Signal(sig) => notice!(
            "stopped by {}, probes detached",
            pytap_sys::signal::name(*sig)
        ),
        End::Duration => notice!("duration elapsed, probes detached"),
        End::Quit => notice!("quit, probes detached"),
        End::Exit => notice!("the script called exit(), probes detached"),
        End::TerminalLost => notice!("the terminal went away, probes detached"),
        End::OutputClosed => {}
        End::Exec { pid, exe } => {
            notice!("process {pid} executed {exe}, which is not the traced Python; stopped")
        }
    }
    if followed.process_count() > 1 {
        notice!("{} processes traced", followed.process_count());
    }
    let mut line = format!(
        "{}, {} lost in {:.3} s",
        consumer.describe(outcome.events),
        outcome.lost,
        outcome.elapsed.as_secs_f64()
    );
    if outcome.malformed > 0 {
        line.push_str(&format!(", {} malformed records", outcome.malformed));
    }
    if outcome.unnamed > 0 {
        line.push_str(&format!(
            ", {} events whose names were lost",
            outcome.unnamed
        ));
    }
    let recovered = consumer.recovered();
    if recovered > 0 {
        line.push_str(&format!(", {recovered} strings read from the binary"));
    }
    if outcome.lost > 0 {
        line.push_str(" (the ring buffer was full: raise --buffer-size)");
    }
    // What pytap itself cost, apart from the traced processes (the
    // benchmark divides it by the events).
    if let Ok(cpu) = pytap_sys::clock::process_cpu_ns() {
        line.push_str(&format!("; pytap used {:.1} ms of CPU", cpu as f64 / 1e6));
    }
    notice!("{line}");
    for note in consumer.notes() {
        notice!("{note}");
    }
}

/// The end-of-replay report, on stderr.
pub fn report_replay(path: &std::path::Path, outcome: &Outcome, consumer: &dyn Consumer) {
    let mut line = format!(
        "{} replayed from {} in {:.3} s",
        consumer.describe(outcome.events),
        path.display(),
        outcome.elapsed.as_secs_f64()
    );
    if outcome.lost > 0 {
        line.push_str(&format!(
            " ({} events were lost when it was recorded)",
            outcome.lost
        ));
    }
    notice!("{line}");
}

/// 0 when something was traced, 1 when nothing was.
pub fn exit_code(outcome: &Outcome) -> ExitCode {
    if outcome.events == 0 && outcome.lost == 0 {
        ExitCode::NothingTraced
    } else {
        ExitCode::Ok
    }
}
