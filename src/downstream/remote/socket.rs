//! The byte stream under HTTP for a remote server: a TCP socket, with a rustls session on it for
//! `https`, every read and write bounded by a deadline; and the [`Closer`] that stops it from
//! another thread.
//!
//! Invariants:
//! - Connecting shares the time left between the addresses in turn, so one unreachable address
//!   (say an IPv6 one) cannot use it all; the addresses come already resolved (see `target`).
//! - After [`Closer::shutdown`], every read or write reports [`ConnError::Shutdown`].

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;

use super::tls::{self, Tls};
use super::url::Url;
use super::wait::{is_retryable, with_deadline, ConnError, Wait};

/// The socket and the shutdown flag, shared between a [`Transport`] and its [`Closer`]s.
#[derive(Debug)]
struct Shared {
    socket: TcpStream,
    shut_down: AtomicBool,
}

/// Stops a connection (`conn::Conn`) from another thread. Cloneable; outliving the connection
/// is harmless.
#[derive(Debug, Clone)]
pub struct Closer(Arc<Shared>);

impl Closer {
    /// Shuts the socket down both ways: a read blocked on it returns at once (the connection's
    /// owner sees [`ConnError::Shutdown`]), and the server sees the connection end.
    pub fn shutdown(&self) {
        self.0.shut_down.store(true, Ordering::SeqCst);
        // Fails only if the socket is already disconnected, which is the goal anyway.
        let _ = self.0.socket.shutdown(Shutdown::Both);
    }
}

/// The byte stream under HTTP: the socket, with a TLS session on it for `https`.
pub struct Transport {
    shared: Arc<Shared>,
    tls: Option<Box<ClientConnection>>,
}

impl Transport {
    /// Reads some bytes; 0 at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, ConnError> {
        let socket = &self.shared.socket;
        let result = match &mut self.tls {
            Some(session) => tls::read(session, socket, buf, deadline),
            None => with_deadline(socket, deadline, Wait::Read, || (&*socket).read(buf)),
        };
        match result {
            Ok(0) | Err(_) if self.shut_down() => Err(ConnError::Shutdown),
            other => other,
        }
    }

    pub fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> Result<(), ConnError> {
        let socket = &self.shared.socket;
        let result = match &mut self.tls {
            Some(session) => tls::write_all(session, socket, data, deadline),
            None => loop {
                if data.is_empty() {
                    break Ok(());
                }
                match with_deadline(socket, deadline, Wait::Write, || (&*socket).write(data)) {
                    Ok(0) => break Err(ConnError::Closed),
                    Ok(sent) => data = data.get(sent..).unwrap_or_default(),
                    Err(e) => break Err(e),
                }
            },
        };
        match result {
            Err(_) if self.shut_down() => Err(ConnError::Shutdown),
            other => other,
        }
    }

    pub fn shut_down(&self) -> bool {
        self.shared.shut_down.load(Ordering::SeqCst)
    }
}

impl Transport {
    /// Connects to one of `addrs` (TCP, then the TLS handshake for `https`) before `deadline`.
    /// `tls` is the server's trust settings, used for `https` only; `None` means the system roots.
    pub fn connect(
        url: &Url,
        addrs: &[SocketAddr],
        tls: Option<&Tls>,
        deadline: Instant,
    ) -> Result<Transport, ConnError> {
        let socket = tcp_connect(&url.host, addrs, deadline)?;
        // Requests go out in one write; Nagle would only delay TLS records and small bodies.
        socket.set_nodelay(true).map_err(ConnError::Io)?;
        let session = match url.tls {
            true => Some(Box::new(handshake(&socket, url, tls, deadline)?)),
            false => None,
        };
        Ok(Transport {
            shared: Arc::new(Shared {
                socket,
                shut_down: AtomicBool::new(false),
            }),
            tls: session,
        })
    }

    /// A handle that shuts this stream down from any thread.
    pub fn closer(&self) -> Closer {
        Closer(Arc::clone(&self.shared))
    }

    /// Whether an idle stream was closed by the server (or received something unasked); never
    /// blocks.
    pub fn idle_closed(&mut self) -> bool {
        let socket = &self.shared.socket;
        if socket.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match &mut self.tls {
            Some(session) => tls::idle_closed(session, socket),
            None => {
                let mut byte = [0u8; 1];
                !matches!(socket.peek(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
            }
        };
        let restored = socket.set_nonblocking(false).is_ok();
        closed || !restored
    }
}

impl AsRawFd for Transport {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.socket.as_raw_fd()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // A `Closer` may keep the socket open: end the connection now, not when it is dropped.
        let _ = self.shared.socket.shutdown(Shutdown::Both);
    }
}

/// Connects to `host`'s addresses in turn, sharing the time left between them.
fn tcp_connect(
    host: &str,
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<TcpStream, ConnError> {
    let context = |what: String, e: io::Error| {
        ConnError::Io(io::Error::new(e.kind(), format!("{what}: {e}")))
    };
    let mut last_error = ConnError::Io(io::Error::new(
        ErrorKind::NotFound,
        format!("{host} resolves to no address"),
    ));
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnError::Timeout);
        }
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        // `connect_timeout` refuses a zero duration.
        let share = share.max(Duration::from_millis(1));
        match TcpStream::connect_timeout(addr, share) {
            Ok(socket) => return Ok(socket),
            Err(e) if is_retryable(&e) => last_error = ConnError::Timeout,
            Err(e) => last_error = context(connect_target(host, addr), e),
        }
    }
    Err(last_error)
}

/// `cannot connect to host:port`, naming the address too when the host is a name.
fn connect_target(host: &str, addr: &SocketAddr) -> String {
    let port = addr.port();
    if addr.ip().to_string() == host {
        format!("cannot connect to {addr}")
    } else {
        format!("cannot connect to {host}:{port} ({addr})")
    }
}

fn handshake(
    socket: &TcpStream,
    url: &Url,
    tls: Option<&Tls>,
    deadline: Instant,
) -> Result<ClientConnection, ConnError> {
    match tls {
        Some(tls) => tls.handshake(socket, &url.host, deadline),
        None => Tls::system()
            .map_err(ConnError::Tls)?
            .handshake(socket, &url.host, deadline),
    }
}
