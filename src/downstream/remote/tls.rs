//! TLS for connections to remote MCP servers: the trust settings of one server ([`Tls`]) and
//! the blocking, deadline-bound driving of a rustls [`ClientConnection`] over a `TcpStream`.
//!
//! Invariants:
//! - Certificates are always verified (webpki, via rustls): against the system's roots, loaded
//!   once per process, plus the server's optional `caFile`. There is no switch to turn
//!   verification off.
//! - Every socket wait, including each step of the handshake, is bounded by the caller's deadline
//!   (through `with_deadline`); rustls itself never touches the socket, so it cannot block
//!   behind our back the way `StreamOwned::read`'s internal loop could.
//! - Failures are worded for a person configuring the gateway: a verification failure says
//!   "certificate verification failed", names the rustls reason, and suggests `caFile` when the
//!   issuer is unknown.

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

use super::wait::{with_deadline, ConnError, Wait};

/// TLS trust settings shared by every connection to one server. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    /// Trust anchors from the system store.
    system_roots: usize,
    /// Trust anchors from `caFile`.
    extra_roots: usize,
}

impl Tls {
    /// System roots plus, when given, every certificate of the PEM file `ca_file`. An unreadable
    /// `ca_file`, or one without a usable certificate, is an error; an empty system store is not
    /// (connections will then fail verification, saying why).
    pub fn new(ca_file: Option<&Path>) -> Result<Tls, String> {
        let mut roots = system_roots().clone();
        let system_roots = roots.len();
        let extra_roots = match ca_file {
            Some(path) => add_ca_file(&mut roots, path)?,
            None => 0,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Servers that also speak HTTP/2 must pick HTTP/1.1, the only thing this client speaks.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            system_roots,
            extra_roots,
        })
    }

    /// The settings with system roots only, built once per process (for `https` servers that
    /// have no `caFile`).
    pub fn system() -> Result<Tls, String> {
        static SYSTEM: OnceLock<Result<Tls, String>> = OnceLock::new();
        SYSTEM.get_or_init(|| Tls::new(None)).clone()
    }

    /// Runs the handshake with `host` over `socket` until it completes or `deadline` passes.
    pub(super) fn handshake(
        &self,
        socket: &TcpStream,
        host: &str,
        deadline: Instant,
    ) -> Result<ClientConnection, ConnError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ConnError::Tls(format!("'{host}' is not a valid TLS server name")))?;
        let mut tls = ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|e| ConnError::Tls(format!("TLS setup failed: {e}")))?;
        let during_handshake = |e: ConnError| match e {
            ConnError::Closed => ConnError::Tls(format!(
                "{host} closed the connection during the TLS handshake"
            )),
            other => other,
        };
        while tls.is_handshaking() {
            flush(&mut tls, socket, deadline).map_err(during_handshake)?;
            if !tls.is_handshaking() {
                break;
            }
            if !tls.wants_read() {
                return Err(ConnError::Tls("the TLS handshake stalled".to_owned()));
            }
            if read_tls(&mut tls, socket, deadline).map_err(during_handshake)? == 0 {
                return Err(during_handshake(ConnError::Closed));
            }
            if let Err(e) = tls.process_new_packets() {
                // Best effort: tell the server why (rustls queued an alert).
                let _ = flush(&mut tls, socket, deadline);
                return Err(ConnError::Tls(self.describe(&e, host)));
            }
        }
        flush(&mut tls, socket, deadline).map_err(during_handshake)?;
        Ok(tls)
    }

    /// A handshake failure in words.
    fn describe(&self, error: &rustls::Error, host: &str) -> String {
        match error {
            rustls::Error::InvalidCertificate(cert) => format!(
                "certificate verification failed for {host}: {}",
                self.describe_certificate(cert)
            ),
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                format!("the TLS handshake with {host} failed ({error}); is it an https server?")
            }
            rustls::Error::AlertReceived(alert) => {
                format!("{host} refused the TLS handshake (alert: {alert:?})")
            }
            other => format!("the TLS handshake with {host} failed: {other}"),
        }
    }

    fn describe_certificate(&self, error: &CertificateError) -> String {
        match error {
            CertificateError::UnknownIssuer => {
                let mut words = "the server's certificate is not trusted (UnknownIssuer); \
                                 set caFile if it is signed by a private CA"
                    .to_owned();
                if self.system_roots + self.extra_roots == 0 {
                    words.push_str(" (no system root certificates were found on this machine)");
                }
                words
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the server's certificate is not valid for this host name ({error})")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired ({error})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the server's certificate is not valid yet ({error}); check the clock")
            }
            other => format!("the server's certificate was rejected ({other})"),
        }
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("system_roots", &self.system_roots)
            .field("extra_roots", &self.extra_roots)
            .finish()
    }
}

/// The system's trust anchors, loaded once: reading and parsing the store takes milliseconds
/// and every server without its own settings shares it.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            log::debug!("loading system root certificates: {error}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            log::debug!("{ignored} system root certificates could not be used");
        }
        if added == 0 {
            log::warn!("no system root certificates found; https servers need caFile");
        }
        roots
    })
}

/// Adds every certificate of the PEM file at `path`; returns how many.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<usize, String> {
    let shown = path.display();
    let pem = fs::read(path).map_err(|e| format!("cannot read caFile {shown}: {e}"))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("caFile {shown} is not valid PEM: {e}"))?;
        roots.add(cert).map_err(|e| {
            format!("caFile {shown} holds a certificate that cannot be a trust anchor: {e}")
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(format!(
            "caFile {shown} contains no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(added)
}

/// Reads decrypted bytes into `buf`; 0 means the server ended the stream (with or without a
/// close_notify: HTTP framing, not TLS, decides whether that truncated a response).
pub(super) fn read(
    tls: &mut ClientConnection,
    socket: &TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, ConnError> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(ConnError::Io(e)),
        }
        // Anything rustls wants to say first (e.g. a key update answer) goes out before we wait.
        flush(tls, socket, deadline)?;
        let received = read_tls(tls, socket, deadline)?;
        tls.process_new_packets()
            .map_err(|e| ConnError::Tls(format!("the TLS stream broke: {e}")))?;
        if received == 0 {
            // No new records can have produced plaintext: the stream is over.
            return Ok(0);
        }
    }
}

/// Encrypts and sends all of `data`.
pub(super) fn write_all(
    tls: &mut ClientConnection,
    socket: &TcpStream,
    mut data: &[u8],
    deadline: Instant,
) -> Result<(), ConnError> {
    while !data.is_empty() {
        let taken = tls.writer().write(data).map_err(ConnError::Io)?;
        data = data.get(taken..).unwrap_or_default();
        flush(tls, socket, deadline)?;
    }
    Ok(())
}

/// Whether an idle connection was closed by the server (or is otherwise unusable), without
/// blocking: `socket` must be in non-blocking mode.
pub(super) fn idle_closed(tls: &mut ClientConnection, socket: &TcpStream) -> bool {
    loop {
        match tls.read_tls(&mut &*socket) {
            Ok(0) => return true,
            Ok(_) if tls.process_new_packets().is_err() => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => return true,
        }
    }
    // Session tickets are handled inside rustls; plaintext or a close_notify is not idle.
    let mut byte = [0u8; 1];
    !matches!(tls.reader().read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// Sends every TLS record rustls has queued.
fn flush(
    tls: &mut ClientConnection,
    socket: &TcpStream,
    deadline: Instant,
) -> Result<(), ConnError> {
    while tls.wants_write() {
        let sent = with_deadline(socket, deadline, Wait::Write, || {
            tls.write_tls(&mut &*socket)
        })?;
        if sent == 0 {
            return Err(ConnError::Closed);
        }
    }
    Ok(())
}

/// Reads TLS records from the socket into rustls; 0 at end of stream.
fn read_tls(
    tls: &mut ClientConnection,
    socket: &TcpStream,
    deadline: Instant,
) -> Result<usize, ConnError> {
    with_deadline(socket, deadline, Wait::Read, || tls.read_tls(&mut &*socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-tls-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn ca_file_errors_are_sentences() {
        let missing = Tls::new(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            missing.starts_with("cannot read caFile /nonexistent/ca.pem"),
            "{missing}"
        );
        let empty = temp_file("empty.pem", b"no certificates here\n");
        let err = Tls::new(Some(&empty)).unwrap_err();
        assert!(err.contains("contains no PEM certificate"), "{err}");
        let garbage = temp_file(
            "garbage.pem",
            b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        let err = Tls::new(Some(&garbage)).unwrap_err();
        assert!(err.starts_with("caFile"), "{err}");
    }

    #[test]
    fn a_ca_file_adds_roots() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
        let mut pem = ca.cert.pem().into_bytes();
        // A key in the same file is skipped, as are other sections.
        pem.extend_from_slice(ca.signing_key.serialize_pem().as_bytes());
        let path = temp_file("ca.pem", &pem);
        let tls = Tls::new(Some(&path)).unwrap();
        assert_eq!(tls.extra_roots, 1);
        assert_eq!(tls.system_roots, Tls::system().unwrap().system_roots);
    }

    #[test]
    fn certificate_failures_in_words() {
        let tls = Tls::new(None).unwrap();
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let words = tls.describe(&unknown, "h");
        assert!(
            words.starts_with(
                "certificate verification failed for h: the server's certificate is not \
                 trusted (UnknownIssuer); set caFile if it is signed by a private CA"
            ),
            "{words}"
        );
        let no_roots = Tls {
            system_roots: 0,
            ..tls.clone()
        };
        assert!(no_roots.describe(&unknown, "h").contains("no system root"));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(tls
            .describe(&name, "h")
            .contains("not valid for this host name"));
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(tls.describe(&expired, "h").contains("has expired"));
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert!(tls
            .describe(&alert, "h")
            .contains("refused the TLS handshake"));
    }
}
