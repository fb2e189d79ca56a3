//! The servers behind the gateway, one pooled handle at a time.
//!
//! - `process`: spawning a child safely and stopping it (stdin close → SIGTERM → SIGKILL, reaped);
//! - `stdio`: a running child as a handle: write a request, wait for the answer in its inbox;
//! - `child_io`: the one thread that reads every child's stdout and stderr;
//! - `handshake`: `initialize` + `notifications/initialized` + the listings the registry needs;
//! - `wanted`: what clients asked every child to be told (log level, subscriptions).

pub mod child_io;
pub mod handshake;
pub mod process;
pub mod remote;
pub mod stdio;
pub mod wanted;
