//! What the long-lived threads do when code under them panics: no thread dies silently.
//!
//! A thread whose state can be rebuilt catches the panic and starts afresh (workers; child I/O catches a panic in each of its steps);
//! one that owns what cannot be rebuilt (the supervisor: every child was forked by it) ends the
//! process with a non-zero status, so that systemd, docker or s6 restart the gateway whole.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Exit status when a thread the gateway cannot do without panicked (EX_SOFTWARE).
pub const EXIT_INTERNAL: i32 = 70;

/// The panic's message, for the log.
pub fn describe(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `body` until it returns; after a panic, logs it and runs it again.
pub fn restart_on_panic(thread: &str, mut body: impl FnMut()) {
    loop {
        match catch_unwind(AssertUnwindSafe(&mut body)) {
            Ok(()) => return,
            Err(panic) => log::error!(
                "{thread}: internal error ({}); the thread starts afresh",
                describe(&*panic)
            ),
        }
    }
}

/// Runs `body`; a panic ends the whole process with `EXIT_INTERNAL`.
pub fn exit_on_panic(thread: &str, body: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(body)) {
        log::error!(
            "{thread}: internal error ({}); the gateway exits so that its supervisor restarts it",
            describe(&*panic)
        );
        std::process::exit(EXIT_INTERNAL);
    }
}
