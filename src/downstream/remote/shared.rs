//! What every MCP-over-HTTP client in the project needs the same way — remote server handles
//! (`link`) and the stdio bridge: a set of idle keep-alive connections, and the legacy HTTP+SSE
//! transport's `endpoint` event.

use super::conn::{Conn, ConnError, ResponseHead, Url};
use super::tls::Tls;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Keep-alive connections not in use, to any origin; at most `max` are kept.
pub struct IdleConns {
    conns: Mutex<Vec<Conn>>,
    max: usize,
}

impl IdleConns {
    pub fn new(max: usize) -> IdleConns {
        IdleConns {
            conns: Mutex::new(Vec::new()),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection to `url`'s origin that the server has not closed meanwhile, else a new
    /// one (connected before `deadline`). The bool says it was reused: a reused connection the
    /// server closes as it is used is worth one retry on a fresh one.
    pub fn take(
        &self,
        url: &Url,
        tls: Option<&Tls>,
        deadline: Instant,
    ) -> Result<(Conn, bool), ConnError> {
        match self.take_idle(url) {
            Some(conn) => Ok((conn, true)),
            None => Conn::connect(url, tls, deadline).map(|conn| (conn, false)),
        }
    }

    /// An idle connection to `url`'s origin that the server has not closed meanwhile, if any.
    pub fn take_idle(&self, url: &Url) -> Option<Conn> {
        let origin = url.origin();
        loop {
            let found = {
                let mut conns = self.lock();
                let position = conns.iter().rposition(|c| c.origin() == origin);
                position.map(|p| conns.swap_remove(p))
            };
            let mut conn = found?;
            if !conn.is_stale() {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn` for reuse if it can take another request and there is room.
    pub fn keep(&self, conn: Conn) {
        if conn.reusable() {
            let mut conns = self.lock();
            if conns.len() < self.max {
                conns.push(conn);
            }
        }
    }

    /// Closes every idle connection.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// Why the legacy stream named no usable endpoint.
#[derive(Debug)]
pub enum EndpointError {
    /// Reading the stream failed.
    Conn(ConnError),
    /// The stream ended first.
    Ended,
    /// The endpoint cannot be used: unparsable, or on another origin.
    Unusable(String),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Conn(e) => write!(f, "waiting for the endpoint event: {e}"),
            EndpointError::Ended => write!(f, "the stream ended before naming its endpoint"),
            EndpointError::Unusable(words) => write!(f, "{words}"),
        }
    }
}

/// Legacy HTTP+SSE: reads the stream `head` (opened on `stream_url`) up to its `endpoint` event
/// and resolves the endpoint against `stream_url`. It must be on the same origin: messages (and
/// credentials) go there, and a server must not be able to send them elsewhere.
pub fn await_endpoint(
    conn: &mut Conn,
    head: &ResponseHead,
    stream_url: &Url,
    deadline: Instant,
) -> Result<Url, EndpointError> {
    let reference = loop {
        match conn.next_event(head, deadline) {
            Ok(Some(event)) if event.event == "endpoint" => break event.data,
            Ok(Some(event)) => log::debug!("{} event before the endpoint, ignored", event.event),
            Ok(None) => return Err(EndpointError::Ended),
            Err(e) => return Err(EndpointError::Conn(e)),
        }
    };
    let endpoint = stream_url
        .join(&reference)
        .map_err(|e| EndpointError::Unusable(format!("bad endpoint {reference:?}: {e}")))?;
    if endpoint.origin() != stream_url.origin() {
        return Err(EndpointError::Unusable(format!(
            "the endpoint {} is on another origin than the stream; refusing to send it anything",
            endpoint.redacted()
        )));
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// The endpoint a stream that says `events` yields, from a one-connection loopback server.
    fn endpoint_of(events: &'static str) -> Result<Url, EndpointError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = tcp.read(&mut request).unwrap();
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            tcp.write_all(head.as_bytes()).unwrap();
            tcp.write_all(events.as_bytes()).unwrap();
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/sse")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = Conn::connect(&url, None, deadline).unwrap();
        let head = conn.send("GET", &url.path, &[], b"", deadline).unwrap();
        let endpoint = await_endpoint(&mut conn, &head, &url, deadline);
        server.join().unwrap();
        endpoint
    }

    #[test]
    fn the_endpoint_resolves_against_the_stream_url() {
        let endpoint = endpoint_of(
            ": hi\n\nevent: ping\ndata: x\n\nevent: endpoint\ndata: messages?sessionId=7\n\n",
        );
        assert_eq!(endpoint.unwrap().path, "/messages?sessionId=7");
    }

    #[test]
    fn an_endpoint_on_another_origin_or_none_is_refused() {
        match endpoint_of("event: endpoint\ndata: http://elsewhere.example/messages\n\n") {
            Err(EndpointError::Unusable(words)) => {
                assert!(words.contains("another origin"), "{words}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            endpoint_of("event: message\ndata: {}\n\n"),
            Err(EndpointError::Ended)
        ));
    }
}
