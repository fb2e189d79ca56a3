//! What every handle of one remote server shares: where it is, how to trust it, what to send, and
//! its name resolver.
//!
//! Name resolution (`getaddrinfo`) has no timeout in std and can hang for as long as the system's
//! resolver likes. So it runs on one long-lived thread per target (`dns-…`, started on the first
//! lookup a host name needs; IP literals never need one), and callers wait for its answer no
//! longer than their own deadline. Lookups asked for while one runs share its answer; a success is
//! kept for [`CACHE_FOR`]. The thread ends when the target is dropped (after a lookup in progress).

use super::conn::{Conn, ConnError, Url};
use super::lock;
use super::tls::Tls;
use crate::config::{RemoteServer, RemoteTransport};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful lookup is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(30);
const RESOLVER_STACK: usize = 64 * 1024;

/// What every handle of one remote server shares.
pub struct Target {
    pub url: Url,
    pub(super) tls: Option<Tls>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) transport: RemoteTransport,
    pub(super) max_message: usize,
    /// `auth`: where the `Authorization` of every request comes from (OAuth).
    pub auth: Option<std::sync::Arc<crate::oauth::Auth>>,
    resolver: Resolver,
}

impl Target {
    /// Errors are sentences for `/health` (a bad `caFile`, say).
    pub fn new(remote: &RemoteServer, max_message: usize) -> Result<Target, String> {
        let url = Url::parse(&remote.url).map_err(|e| format!("url: {e}"))?;
        let tls = match (url.tls, &remote.ca_file) {
            (false, _) => None,
            (true, None) => Some(Tls::system()?),
            (true, Some(path)) => Some(Tls::new(Some(path))?),
        };
        Ok(Target {
            resolver: Resolver::new(&url.host, url.port),
            url,
            tls,
            headers: remote.headers.clone(),
            transport: remote.transport,
            max_message,
            auth: None,
        })
    }

    /// The same, its requests authorized by `auth`.
    pub fn with_auth(self, auth: Option<std::sync::Arc<crate::oauth::Auth>>) -> Target {
        Target { auth, ..self }
    }

    /// A new connection to `url` (an origin of this server), everything bounded by `deadline`.
    pub(super) fn connect(&self, url: &Url, deadline: Instant) -> Result<Conn, ConnError> {
        let addrs = if url.host == self.url.host && url.port == self.url.port {
            self.resolver.resolve(deadline)?
        } else {
            // The legacy endpoint is on the same origin; this is only for safety's sake.
            Resolver::new(&url.host, url.port).resolve(deadline)?
        };
        Conn::connect_to(url, &addrs, self.tls.as_ref(), deadline)
    }
}

/// Resolves one host and port on its own thread (see the module docs).
pub struct Resolver {
    host: String,
    port: u16,
    /// An IP literal: nothing to look up.
    literal: Option<SocketAddr>,
    state: Mutex<ResolverState>,
    /// The lookup itself (`getaddrinfo` through std; replaceable in tests).
    lookup: fn(&str, u16) -> Lookup,
}

#[derive(Default)]
struct ResolverState {
    asks: Option<Sender<Sender<Lookup>>>,
    cached: Option<(Instant, Vec<SocketAddr>)>,
}

type Lookup = Result<Vec<SocketAddr>, String>;

impl Resolver {
    pub fn new(host: &str, port: u16) -> Resolver {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Resolver {
            host: host.to_string(),
            port,
            literal: bare
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port)),
            state: Mutex::new(ResolverState::default()),
            lookup: system_lookup,
        }
    }

    /// The host's addresses, or an error once `deadline` passes first.
    pub fn resolve(&self, deadline: Instant) -> Result<Vec<SocketAddr>, ConnError> {
        if let Some(addr) = self.literal {
            return Ok(vec![addr]);
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        {
            let mut state = lock(&self.state);
            if let Some((at, addrs)) = &state.cached {
                if at.elapsed() < CACHE_FOR {
                    return Ok(addrs.clone());
                }
            }
            let asks = match &state.asks {
                Some(asks) => asks.clone(),
                None => {
                    let asks = self.start().map_err(ConnError::Io)?;
                    state.asks = Some(asks.clone());
                    asks
                }
            };
            if asks.send(reply).is_err() {
                state.asks = None;
                return Err(ConnError::Io(io::Error::other(format!(
                    "cannot resolve {}: the resolver thread is gone",
                    self.host
                ))));
            }
        }
        match answer.recv_deadline(deadline) {
            Ok(Ok(addrs)) => {
                lock(&self.state).cached = Some((Instant::now(), addrs.clone()));
                Ok(addrs)
            }
            Ok(Err(words)) => Err(ConnError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                words,
            ))),
            Err(RecvTimeoutError::Timeout) => Err(ConnError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ConnError::Io(io::Error::other(format!(
                "cannot resolve {}: the resolver thread stopped",
                self.host
            )))),
        }
    }

    fn start(&self) -> io::Result<Sender<Sender<Lookup>>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (host, port, lookup) = (self.host.clone(), self.port, self.lookup);
        std::thread::Builder::new()
            .name(format!("dns-{host}"))
            .stack_size(RESOLVER_STACK)
            .spawn(move || serve_lookups(&host, port, lookup, rx))?;
        Ok(tx)
    }
}

/// The resolver thread: one lookup at a time, its answer shared by everyone who asked meanwhile.
fn serve_lookups(
    host: &str,
    port: u16,
    lookup: fn(&str, u16) -> Lookup,
    asks: Receiver<Sender<Lookup>>,
) {
    while let Ok(first) = asks.recv() {
        let lookup = lookup(host, port);
        let _ = first.send(lookup.clone());
        while let Ok(waiting) = asks.try_recv() {
            let _ = waiting.send(lookup.clone());
        }
    }
}

fn system_lookup(host: &str, port: u16) -> Lookup {
    (host, port)
        .to_socket_addrs()
        .map(|addrs| addrs.collect::<Vec<_>>())
        .map_err(|e| format!("cannot resolve {host}: {e}"))
        .and_then(|addrs| match addrs.is_empty() {
            true => Err(format!("{host} resolves to no address")),
            false => Ok(addrs),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_need_no_lookup_and_names_are_resolved_on_the_thread() {
        let literal = Resolver::new("127.0.0.1", 80);
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            literal.resolve(deadline).unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
        assert!(
            lock(&literal.state).asks.is_none(),
            "no thread for a literal"
        );
        let v6 = Resolver::new("[::1]", 443);
        assert_eq!(
            v6.resolve(deadline).unwrap(),
            vec!["[::1]:443".parse().unwrap()]
        );

        let name = Resolver::new("localhost", 8080);
        let addrs = name.resolve(deadline).unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback()),
            "{addrs:?}"
        );
        assert!(lock(&name.state).cached.is_some());
        // Cached: answered without asking the thread again.
        assert_eq!(name.resolve(Instant::now()).unwrap(), addrs);
    }

    #[test]
    fn a_hanging_lookup_ends_at_the_callers_deadline() {
        fn hangs(_: &str, _: u16) -> Lookup {
            std::thread::sleep(Duration::from_secs(30));
            Err("never".into())
        }
        let mut name = Resolver::new("hangs.example", 1);
        name.lookup = hangs;
        let deadline = Instant::now() + Duration::from_millis(100);
        assert!(matches!(name.resolve(deadline), Err(ConnError::Timeout)));
        // A second caller is not stuck behind the first either.
        let deadline = Instant::now() + Duration::from_millis(100);
        assert!(matches!(name.resolve(deadline), Err(ConnError::Timeout)));
    }
}
