//! Blocking socket operations bounded by a deadline, and how an HTTP exchange with a remote
//! server fails ([`ConnError`]), for every layer of the remote client (TLS, sockets, HTTP).
//!
//! Invariant: [`with_deadline`] never waits past its deadline; it sets the socket's timeout to
//! the time left before each try and retries only interruptions and early wake-ups.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A deadline that never comes in practice, for a reader that should block until data arrives or
/// a `socket::Closer` stops it.
pub fn no_deadline() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// Why a request failed.
#[derive(Debug)]
pub enum ConnError {
    /// The deadline passed.
    Timeout,
    /// The server closed (or reset) the connection before a full response. The caller may retry
    /// once on a fresh connection if the request was idempotent or was not sent yet.
    Closed,
    /// Connecting or another socket operation failed (the message names what was attempted).
    Io(io::Error),
    /// The TLS handshake or stream failed; certificate problems included, in words.
    Tls(String),
    /// The server's response is not valid HTTP/1.1.
    Protocol(String),
    /// The response body is larger than the limit given (in bytes).
    TooLarge(usize),
    /// `socket::Closer::shutdown` stopped the connection.
    Shutdown,
    /// The request itself cannot be sent as asked (a bad header, or a misuse of the API).
    InvalidRequest(String),
}

impl ConnError {
    /// Classifies a socket error: the peer going away is [`ConnError::Closed`].
    pub fn from_io(error: io::Error) -> ConnError {
        match error.kind() {
            ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof => ConnError::Closed,
            ErrorKind::WouldBlock | ErrorKind::TimedOut => ConnError::Timeout,
            _ => ConnError::Io(error),
        }
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Timeout => write!(f, "the server did not answer in time"),
            ConnError::Closed => write!(
                f,
                "the server closed the connection before sending a full response"
            ),
            ConnError::Io(e) => write!(f, "network error: {e}"),
            ConnError::Tls(words) => write!(f, "TLS: {words}"),
            ConnError::Protocol(words) => write!(f, "the server broke HTTP/1.1: {words}"),
            ConnError::TooLarge(max) => {
                write!(
                    f,
                    "the server's response is larger than the limit of {max} bytes"
                )
            }
            ConnError::Shutdown => write!(f, "the connection was shut down by the gateway"),
            ConnError::InvalidRequest(words) => write!(f, "invalid request: {words}"),
        }
    }
}

impl std::error::Error for ConnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The direction a socket operation waits in.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    Read,
    Write,
}

/// Runs a blocking socket operation with the socket's timeout set to the time left before
/// `deadline`, retrying after interruptions and early wake-ups until it succeeds, fails, or the
/// deadline passes.
pub fn with_deadline<T>(
    socket: &TcpStream,
    deadline: Instant,
    wait: Wait,
    mut op: impl FnMut() -> io::Result<T>,
) -> Result<T, ConnError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnError::Timeout);
        }
        let set = match wait {
            Wait::Read => socket.set_read_timeout(Some(left)),
            Wait::Write => socket.set_write_timeout(Some(left)),
        };
        set.map_err(ConnError::Io)?;
        match op() {
            Ok(value) => return Ok(value),
            Err(e) if is_retryable(&e) => continue,
            Err(e) => return Err(ConnError::from_io(e)),
        }
    }
}

/// A timed-out socket wait (the loop re-checks the deadline) or an interrupted system call.
pub fn is_retryable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
