//! One client connection: its socket, buffers, state, and the mapping of socket results to outcomes.
//!
//! Lifecycle: `Reading` (between and during requests) → `Awaiting` (a worker has the request) →
//! back to `Reading` on keep-alive, or `Closing` (flush) → `Lingering` (our side shut, the client's
//! input discarded until it closes too, so a last answer is not lost to a reset) → closed.
//! `GET /sse` turns a connection into `Streaming` for good. Interest is recomputed from the buffers:
//! WRITABLE only while output is pending, READABLE always (so a vanished client is noticed even
//! while we wait for its answer).
//!
//! Input is bounded: at most `READ_AHEAD` unparsed bytes in `Reading`, `PIPELINE_LIMIT` while a
//! request is out; the rest stays in the kernel (backpressure) and `read_paused` tells the reactor
//! to read again once the buffer has room. `Closing`, `Lingering` and `Streaming` discard input.

use crate::http::{Limits, RequestReader};
use crate::job::Slot;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::time::Instant;

/// Bytes read ahead while a request is being served (pipelined requests, or garbage).
const PIPELINE_LIMIT: usize = 64 * 1024;
/// Unparsed bytes held while reading requests; the request reader consumes them as it parses.
pub const READ_AHEAD: usize = 256 * 1024;
/// An output buffer that grew beyond this is released once empty.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Debug)]
pub enum State {
    Reading,
    Awaiting {
        keep_alive: bool,
        head_only: bool,
        headers: Vec<(&'static str, String)>,
        /// Messages before the answer may turn it into an event stream.
        sse: bool,
        /// The answer has become a chunked event stream (its head is written).
        streaming: bool,
        /// The request was HTTP/1.1: an interim `100 Continue` may be sent to find out whether a
        /// client that closed its side is still there.
        may_probe: bool,
    },
    Streaming {
        session: Slot,
    },
    Closing,
    /// Everything is written and our side is shut; waiting (briefly) for the client to close.
    Lingering {
        since: Instant,
    },
}

/// What a read pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Read what there was (maybe nothing); the socket is still open.
    Open,
    /// The peer closed its side (or the socket failed).
    Closed,
}

pub struct Conn {
    pub sock: TcpStream,
    pub gen: u64,
    pub state: State,
    pub reader: RequestReader,
    pub inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    registered: Option<Interest>,
    /// When the first byte of the request being read arrived.
    pub request_started: Option<Instant>,
    /// Last time the socket accepted output or we had none to give.
    pub last_write: Instant,
    /// Last time anything happened on the connection.
    pub last_active: Instant,
    /// The peer closed its sending side (we may still owe it an answer).
    pub read_closed: bool,
    /// Reading stopped with input left in the kernel because the buffer was full.
    pub read_paused: bool,
    /// Requests are not processed while this much output waits: the client must read first.
    pub output_paused: bool,
    /// A probe (`100 Continue`, or an SSE comment) was sent after the client closed its side.
    pub probed: bool,
    /// The resume queue already holds this connection.
    pub resume_queued: bool,
    /// Accepted over `maxClients` only to be told 503.
    pub rejected: bool,
}

impl Conn {
    pub fn new(sock: TcpStream, gen: u64, limits: Limits, now: Instant) -> Conn {
        Conn {
            sock,
            gen,
            state: State::Reading,
            reader: RequestReader::new(limits),
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            registered: None,
            request_started: None,
            last_write: now,
            last_active: now,
            read_closed: false,
            read_paused: false,
            output_paused: false,
            probed: false,
            resume_queued: false,
            rejected: false,
        }
    }

    pub fn slot(&self, key: usize) -> Slot {
        Slot { key, gen: self.gen }
    }

    /// Reads everything available (within the read-ahead limit) into `inbuf`; streams discard input.
    pub fn read(&mut self, scratch: &mut [u8], now: Instant) -> ReadOutcome {
        if self.read_closed {
            return ReadOutcome::Closed;
        }
        self.read_paused = false;
        loop {
            let discard = self.discards_input();
            let room = match self.state {
                _ if discard => scratch.len(),
                State::Reading => READ_AHEAD.saturating_sub(self.inbuf.len()),
                _ => PIPELINE_LIMIT.saturating_sub(self.inbuf.len()),
            }
            .min(scratch.len());
            if room == 0 {
                self.read_paused = true;
                return ReadOutcome::Open; // backpressure: leave the rest in the kernel
            }
            match self.sock.read(&mut scratch[..room]) {
                Ok(0) => {
                    self.read_closed = true;
                    return ReadOutcome::Closed;
                }
                Ok(n) => {
                    self.last_active = now;
                    if !discard {
                        if self.request_started.is_none() {
                            self.request_started = Some(now);
                        }
                        self.inbuf.extend_from_slice(&scratch[..n]);
                    }
                }
                Err(e) => match classify(&e) {
                    IoKind::WouldBlock => return ReadOutcome::Open,
                    IoKind::Retry => {}
                    IoKind::Closed => {
                        self.read_closed = true;
                        return ReadOutcome::Closed;
                    }
                },
            }
        }
    }

    /// Streams, and connections that are ending, read only to notice the client closing.
    fn discards_input(&self) -> bool {
        matches!(
            self.state,
            State::Streaming { .. } | State::Closing | State::Lingering { .. }
        )
    }

    /// Shuts our sending side (everything is written) and starts lingering.
    pub fn linger(&mut self, now: Instant) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        self.inbuf = Vec::new();
        self.state = State::Lingering { since: now };
    }

    /// Queues bytes for the client (call `flush` after).
    pub fn queue(&mut self, bytes: &[u8]) {
        if self.pending() == 0 {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes as much as the socket takes. Err means the connection is dead.
    pub fn flush(&mut self, now: Instant) -> Result<(), Dead> {
        while self.out_pos < self.out.len() {
            match self.sock.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(Dead),
                Ok(n) => {
                    self.out_pos += n;
                    self.last_write = now;
                    self.last_active = now;
                }
                Err(e) => match classify(&e) {
                    IoKind::WouldBlock => return Ok(()),
                    IoKind::Retry => {}
                    IoKind::Closed => return Err(Dead),
                },
            }
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        self.last_write = now;
        Ok(())
    }

    /// Registers or re-registers for what the buffers need now.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let wanted = if self.pending() > 0 {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self.registered {
            Some(current) if current == wanted => Ok(()),
            Some(_) => {
                self.registered = Some(wanted);
                registry.reregister(&mut self.sock, token, wanted)
            }
            None => {
                self.registered = Some(wanted);
                registry.register(&mut self.sock, token, wanted)
            }
        }
    }

    /// Releases the input buffer's memory when it is empty and was large.
    pub fn trim_input(&mut self) {
        if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_CAPACITY {
            self.inbuf = Vec::new();
        }
    }
}

/// The connection cannot be written to any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dead;

/// Every `io::ErrorKind` → outcome decision, in one place.
enum IoKind {
    WouldBlock,
    /// Interrupted: try again.
    Retry,
    /// Reset, broken pipe, anything else: the connection is over (not worth an error log line).
    Closed,
}

fn classify(e: &io::Error) -> IoKind {
    match e.kind() {
        io::ErrorKind::WouldBlock => IoKind::WouldBlock,
        io::ErrorKind::Interrupted => IoKind::Retry,
        _ => IoKind::Closed,
    }
}
