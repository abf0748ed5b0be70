//! What a body reads of the world and where its output goes: the firing's
//! [`Context`] (thread, memory, clock, the site), the [`Output`], and the
//! [`World`] a run is given (those two and the globals' store).

use crate::store::Store;

/// The world a body runs in.
pub trait Context {
    /// Process id.
    fn pid(&self) -> i64;
    /// Thread id.
    fn tid(&self) -> i64;
    /// Parent's process id.
    fn ppid(&self) -> i64;
    /// User id.
    fn uid(&self) -> i64;
    /// CPU.
    fn cpu(&self) -> i64;
    /// The thread's name.
    fn execname(&self) -> Vec<u8>;
    /// `target()`.
    fn target(&self) -> i64;
    /// Wall-clock time in nanoseconds.
    fn now_ns(&self) -> i64;
    /// The monotonic clock in nanoseconds (D's `timestamp`).
    fn monotonic_ns(&self) -> i64;
    /// A marker argument.
    fn arg(&self, index: usize) -> i64;
    /// The frame pointer (`$arg4` of function markers), or 0.
    fn frame(&self) -> i64;
    /// A string of the traced process, at most `max` bytes.
    fn user_string(&mut self, addr: i64, max: Option<usize>) -> Result<Vec<u8>, String>;
    /// The firing thread's Python stack as the dialect prints it, at most
    /// `nframes` frames (0: all); empty where the probe has no thread (a
    /// timer, `begin`, `end`).
    fn python_stack(&mut self, nframes: usize) -> Vec<u8> {
        let _ = nframes;
        Vec::new()
    }
    /// The firing thread's native stack likewise.
    fn native_stack(&mut self, nframes: usize) -> Vec<u8> {
        let _ = nframes;
        Vec::new()
    }
    /// The marker site that fired, as `dtrace -l` lists it (nothing for
    /// probes that are not at a site).
    fn probe(&self) -> ProbeInfo {
        ProbeInfo::default()
    }
}

/// A marker site as `dtrace -l` lists it: D's probe id, `probemod` and
/// `probefunc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeInfo {
    /// The probe id.
    pub id: i64,
    /// The file's base name.
    pub module: Vec<u8>,
    /// The C function holding the site (`-` when no symbol covers it).
    pub function: Vec<u8>,
}

/// Where output goes.
pub trait Output {
    /// Bytes for stdout.
    fn write(&mut self, bytes: &[u8]);
    /// `warn()`: a line for stderr (without `WARNING: `).
    fn warn(&mut self, message: &str);
}

/// Everything a body touches.
pub struct World<'a> {
    /// The firing context.
    pub ctx: &'a mut dyn Context,
    /// Globals.
    pub store: &'a mut dyn Store,
    /// Output.
    pub out: &'a mut dyn Output,
}

impl std::fmt::Debug for World<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("World")
    }
}
