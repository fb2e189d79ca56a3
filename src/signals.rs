//! SIGTERM and SIGINT, the supervisor-friendly way: blocked in every thread and collected by one
//! thread with `sigwait`, so no async-signal-safety puzzles. The first signal starts a graceful stop,
//! the second skips the grace period, a third exits at once (children die with us: PDEATHSIG).
//!
//! SIGHUP (`systemctl reload`, the unit's `ExecReload`, `mcp-gateway reload`) is collected the same
//! way and passed to the config watcher (`reload`), which reloads the config; it never stops the
//! gateway, as it would by default.

use crate::job::{ReactorSink, ToReactor};

fn stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it starts afterwards. Call it
/// first thing, before any thread exists.
pub fn block() -> std::io::Result<()> {
    let set = stop_signals();
    // SAFETY: set is a valid sigset.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Starts the thread that turns SIGTERM/SIGINT into `ToReactor::Shutdown` and SIGHUP into a
/// message on `hangups`.
pub fn watch(sink: ReactorSink, hangups: crossbeam_channel::Sender<()>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let set = stop_signals();
            let mut count = 0;
            loop {
                let mut signal: libc::c_int = 0;
                // SAFETY: set is valid and the signals are blocked in every thread.
                if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                    continue;
                }
                if signal == libc::SIGHUP {
                    if hangups.send(()).is_err() {
                        log::warn!("SIGHUP received, but nothing reloads the config any more");
                    }
                    continue;
                }
                count += 1;
                let name = if signal == libc::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                if count >= 3 {
                    log::warn!("{name} again: exiting now");
                    std::process::exit(130);
                }
                log::info!("{name} received");
                sink.send(ToReactor::Shutdown);
            }
        })?;
    Ok(())
}
