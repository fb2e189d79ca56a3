//! The OAuth 2.1 fixture (`tests/interop/oauth_server.py`: two authorization servers and an MCP
//! server they protect) as tests start it, and plain HTTP to reach it.

use super::HttpResponse;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A running `oauth_server.py`, killed when dropped.
pub struct Fixture {
    child: Child,
    pub mcp: String,
    pub issuer: String,
    pub issuer2: String,
    pub control: String,
    stderr: Arc<Mutex<String>>,
}

impl Fixture {
    /// Starts the fixture with `flags` and reads the JSON line naming its URLs.
    pub fn start(flags: &[&str]) -> Fixture {
        let mut child = Command::new(super::python())
            .arg(super::interop_script("oauth_server.py"))
            .args(flags)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start oauth_server.py");
        let stderr = super::capture_lines(child.stderr.take().unwrap());
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the fixture's first line");
        let urls: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            // Let the stderr thread catch up with the traceback before reporting it.
            let _ = child.wait();
            std::thread::sleep(std::time::Duration::from_millis(200));
            panic!(
                "oauth_server.py did not start: {line:?}\n{}",
                stderr.lock().unwrap()
            )
        });
        let url = |key: &str| urls[key].as_str().unwrap().to_string();
        Fixture {
            mcp: url("mcp"),
            issuer: url("issuer"),
            issuer2: url("issuer2"),
            control: url("control"),
            child,
            stderr,
        }
    }

    /// `http://127.0.0.1:P` of the MCP server.
    pub fn base(&self) -> &str {
        self.mcp.strip_suffix("/mcp").unwrap()
    }

    pub fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.base())
    }

    pub fn events(&self) -> Vec<Value> {
        let answer = get(&format!("{}/events", self.control));
        assert_eq!(answer.status, 200);
        answer.json().as_array().unwrap().clone()
    }

    /// The events of `kind`.
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    pub fn control(&self, action: &str) -> Value {
        let answer = request("POST", &format!("{}/{action}", self.control), &[], b"");
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("oauth_server.py stderr:\n{}", self.stderr.lock().unwrap());
        }
    }
}

/// (`127.0.0.1:P`, `/path?query`) of an http URL.
pub fn split(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let (addr, path) = split(url);
    super::http_request(addr, method, path, headers, body)
}

pub fn get(url: &str) -> HttpResponse {
    request("GET", url, &[], b"")
}
