//! The CLI's standard output. A reader that goes away (`memrl env list | head -1`) ends the
//! output quietly: later writes are dropped and the command finishes normally, instead of
//! `println!` panicking on the broken pipe. Any other write error still panics, as `println!`'s
//! does.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write found the reader gone.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `args` to standard output (what [`crate::outln!`] and [`crate::out!`] call).
pub fn write_out(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        } else {
            panic!("failed printing to stdout: {e}");
        }
    }
}
