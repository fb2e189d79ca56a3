//! The audit log (`gateway.auditLog`): one JSON line per forwarded call — who called what, on
//! which server, how it ended, how big it was — written by a thread of its own.
//!
//! Who owns what:
//! - the reactor notes the caller when it makes the job (`Call`: time, client, session, server,
//!   method, the tool, prompt or URI it names) and, at the call's end, hands the note and the end
//!   (`metrics::Ended`) to `AuditLog::log`, which never blocks: the queue is bounded
//!   (`QUEUE_LINES`), and a line that finds it full is dropped and counted (`/metrics`, `/health`);
//! - the job's carrier (child I/O, in the reactor's loop, for a local server; a worker for a
//!   remote one) measures its params and hashes its arguments (`Call::measure`): O(size of the
//!   arguments), never while the request is being routed;
//! - the writer thread (`audit`) alone formats lines, owns the file and rotates it.
//!
//! Invariants: a line is written whole or not at all (one `write_all` per batch of whole lines);
//! argument values appear only with `gateway.auditArguments: true` (otherwise their FNV-1a hash);
//! the file is created readable by its owner only (0600); rotation keeps `KEEP_FILES` old files,
//! `PATH.1` the newest, and happens before a line would take the file past `maxBytes`.

use crate::config::{AuditConfig as Settings, AuditTarget as Target};
use crate::metrics::{Ended, ErrorType};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;
use serde_json::value::RawValue;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Old files kept beside the current one: `PATH.1` … `PATH.3`.
pub const KEEP_FILES: usize = 3;
/// Lines waiting for the writer at most; more are dropped (and counted).
pub const QUEUE_LINES: usize = 8192;
/// The profile every call is made under until profiles exist.
pub const DEFAULT_PROFILE: &str = "default";

/// The client side of a call, as the reactor knows it when it makes the job.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// `streamable_http`, `legacy_sse` or `rest`.
    pub transport: &'static str,
    /// `clientInfo.name` / `.version` from `initialize`.
    pub name: Option<String>,
    pub version: Option<String>,
    /// The first 8 characters of the session id (enough to follow one session, not to take it).
    pub session: Option<String>,
}

/// What the audit line of one call says besides its end; made by the reactor with the job.
#[derive(Debug)]
pub struct Call {
    pub at: SystemTime,
    pub client: Client,
    pub profile: String,
    /// None for a call the gateway refused before choosing a server (an unknown tool).
    pub server: Option<String>,
    pub method: &'static str,
    /// The tool (`tools/call`, the name the client used), prompt or resource URI called.
    pub target: Option<String>,
    /// `gateway.auditArguments`: keep the argument values, not only their hash.
    pub keep_arguments: bool,
    /// Filled by the job's carrier (`measure`).
    measured: OnceLock<Measured>,
}

#[derive(Debug)]
struct Measured {
    request_bytes: usize,
    hash: Option<u64>,
    values: Option<Box<RawValue>>,
}

impl Call {
    pub fn new(
        client: Client,
        server: Option<String>,
        method: &'static str,
        target: Option<String>,
    ) -> Call {
        Call {
            at: SystemTime::now(),
            client,
            profile: DEFAULT_PROFILE.to_string(),
            server,
            method,
            target: target.map(bounded),
            keep_arguments: false,
            measured: OnceLock::new(),
        }
    }

    /// Sizes and hashes the call's params as they go downstream (`arguments` may be absent);
    /// keeps the argument values only with `keep_arguments`. The first measurement counts.
    pub fn measure(&self, params: &crate::rpc::Params) {
        if self.measured.get().is_some() {
            return;
        }
        let request_bytes = serialized_len(params);
        let arguments = params.raw("arguments");
        let measured = Measured {
            request_bytes,
            hash: arguments.map(|raw| fnv1a(raw.get().as_bytes())),
            values: arguments
                .filter(|_| self.keep_arguments)
                .map(ToOwned::to_owned),
        };
        let _ = self.measured.set(measured);
    }
}

/// Longest tool name, prompt name or URI written as is; longer ones (only a client's unknown
/// names can be) are cut, marked with `…`.
const MAX_TARGET_CHARS: usize = 1024;

fn bounded(mut target: String) -> String {
    if let Some((cut, _)) = target.char_indices().nth(MAX_TARGET_CHARS) {
        target.truncate(cut);
        target.push('…');
    }
    target
}

fn serialized_len(params: &crate::rpc::Params) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, params);
    count.0
}

/// FNV-1a, 64 bits: a stable fingerprint of the argument bytes (not a secret-proof digest).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Numbers of the audit log, for `/metrics` and `/health`.
#[derive(Debug, Default)]
pub struct Counters {
    pub written: AtomicU64,
    /// Lines dropped because the queue was full (the writer could not keep up).
    pub dropped: AtomicU64,
    /// Lines lost to write errors.
    pub failed: AtomicU64,
    /// Files rotated.
    pub rotations: AtomicU64,
}

struct Line {
    call: Arc<Call>,
    ended: Ended,
}

/// The reactor's side of the audit log: a non-blocking queue to the writer thread.
#[derive(Clone)]
pub struct AuditLog {
    tx: Sender<Line>,
    pub counters: Arc<Counters>,
    /// `gateway.auditArguments`.
    pub arguments: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// Queues the line of a call that ended; never blocks (a full queue drops it, counted).
    pub fn log(&self, call: Arc<Call>, ended: Ended) {
        match self.tx.try_send(Line { call, ended }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread; `finish` waits for it to write what is queued once every `AuditLog` is gone.
pub struct Writer {
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

/// Opens the target (so a path that cannot work fails the start) and starts the writer.
pub fn start(settings: &Settings) -> Result<(AuditLog, Writer), String> {
    start_with(settings, QUEUE_LINES)
}

fn start_with(settings: &Settings, queue: usize) -> Result<(AuditLog, Writer), String> {
    let sink = match &settings.target {
        Target::Stderr => Sink::Stderr,
        Target::File(path) => {
            let file = open(path).map_err(|e| {
                format!(
                    "gateway.auditLog: cannot open {} for appending: {e}",
                    path.display()
                )
            })?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            Sink::File {
                path: path.clone(),
                file,
                size,
                max_bytes: settings.max_bytes,
            }
        }
    };
    let (tx, rx) = crossbeam_channel::bounded(queue);
    let counters = Arc::new(Counters::default());
    let writer = {
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                let mut sink = sink;
                // A panic loses the lines of its batch, not the log.
                crate::panics::restart_on_panic("audit", || write_lines(&rx, &mut sink, &counters))
            })
            .map_err(|e| format!("cannot start the audit log writer: {e}"))?
    };
    let log = AuditLog {
        tx,
        counters,
        arguments: settings.arguments,
    };
    Ok((log, Writer { thread: writer }))
}

fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

enum Sink {
    Stderr,
    File {
        path: PathBuf,
        file: File,
        size: u64,
        max_bytes: u64,
    },
}

/// Lines written in one batch at most, so rotation is checked often enough.
const BATCH: usize = 256;

fn write_lines(rx: &Receiver<Line>, sink: &mut Sink, counters: &Counters) {
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut last_complaint: Option<std::time::Instant> = None;
    while let Ok(first) = rx.recv() {
        let mut lines = vec![first];
        while lines.len() < BATCH {
            match rx.try_recv() {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        let mut pending = 0;
        for line in lines {
            let before = batch.len();
            format_line(&mut batch, &line.call, &line.ended);
            if let Sink::File {
                size, max_bytes, ..
            } = sink
            {
                // This line would take the file past its cap: write what came before, rotate.
                // (A line longer than the cap still gets a file of its own.)
                if *size + batch.len() as u64 > *max_bytes && (*size > 0 || before > 0) {
                    let tail = batch.split_off(before);
                    flush(sink, &mut batch, pending, counters, &mut last_complaint);
                    rotate(sink, counters, &mut last_complaint);
                    batch = tail;
                    pending = 0;
                }
            }
            pending += 1;
        }
        flush(sink, &mut batch, pending, counters, &mut last_complaint);
    }
}

fn flush(
    sink: &mut Sink,
    batch: &mut Vec<u8>,
    lines: u64,
    counters: &Counters,
    last_complaint: &mut Option<std::time::Instant>,
) {
    if batch.is_empty() {
        return;
    }
    let result = match sink {
        Sink::Stderr => std::io::stderr().lock().write_all(batch),
        Sink::File { file, size, .. } => {
            let result = file.write_all(batch);
            if result.is_ok() {
                *size += batch.len() as u64;
            }
            result
        }
    };
    match result {
        Ok(()) => {
            counters.written.fetch_add(lines, Ordering::Relaxed);
        }
        Err(e) => {
            counters.failed.fetch_add(lines, Ordering::Relaxed);
            complain(last_complaint, &format!("cannot write the audit log: {e}"));
        }
    }
    batch.clear();
}

/// `PATH.2` → `PATH.3`, `PATH.1` → `PATH.2`, `PATH` → `PATH.1`, then a new `PATH`.
fn rotate(sink: &mut Sink, counters: &Counters, last_complaint: &mut Option<std::time::Instant>) {
    let Sink::File {
        path, file, size, ..
    } = sink
    else {
        return;
    };
    let numbered = |n: usize| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    for n in (1..KEEP_FILES).rev() {
        let from = numbered(n);
        if from.exists() {
            let _ = std::fs::rename(&from, numbered(n + 1));
        }
    }
    if let Err(e) = std::fs::rename(&*path, numbered(1)) {
        complain(
            last_complaint,
            &format!("cannot rotate the audit log {}: {e}", path.display()),
        );
        return;
    }
    match open(path) {
        Ok(new) => {
            *file = new;
            *size = 0;
            counters.rotations.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => complain(
            last_complaint,
            &format!("cannot open a new audit log {}: {e}", path.display()),
        ),
    }
}

/// At most one log line a minute about a failing audit log.
fn complain(last: &mut Option<std::time::Instant>, message: &str) {
    let now = std::time::Instant::now();
    if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
        log::error!("{message}");
        *last = Some(now);
    }
}

#[derive(Serialize)]
struct Record<'a> {
    time: String,
    client: ClientRecord<'a>,
    profile: &'a str,
    server: Option<&'a str>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'a str>,
    #[serde(rename = "durationMs")]
    duration_ms: f64,
    outcome: &'static str,
    #[serde(rename = "errorCode", skip_serializing_if = "Option::is_none")]
    error_code: Option<i64>,
    #[serde(rename = "errorType", skip_serializing_if = "str::is_empty")]
    error_type: &'static str,
    #[serde(rename = "requestBytes")]
    request_bytes: Option<usize>,
    #[serde(rename = "answerBytes")]
    answer_bytes: usize,
    #[serde(rename = "argumentsHash", skip_serializing_if = "Option::is_none")]
    arguments_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct ClientRecord<'a> {
    transport: &'a str,
    name: Option<&'a str>,
    version: Option<&'a str>,
    session: Option<&'a str>,
}

/// Appends the JSON line of one call to `out`.
fn format_line(out: &mut Vec<u8>, call: &Call, ended: &Ended) {
    let measured = call.measured.get();
    let outcome = match ended.error {
        ErrorType::None => "ok",
        ErrorType::ToolError => "isError",
        _ => "error",
    };
    let target = call.target.as_deref();
    let record = Record {
        time: rfc3339(call.at),
        client: ClientRecord {
            transport: call.client.transport,
            name: call.client.name.as_deref(),
            version: call.client.version.as_deref(),
            session: call.client.session.as_deref(),
        },
        profile: &call.profile,
        server: call.server.as_deref(),
        method: call.method,
        tool: target.filter(|_| call.method == "tools/call"),
        prompt: target.filter(|_| call.method == "prompts/get"),
        uri: target.filter(|_| call.method == "resources/read"),
        duration_ms: (ended.elapsed.as_micros() as f64) / 1000.0,
        outcome,
        error_code: ended.code,
        error_type: ended.error.label(),
        request_bytes: measured.map(|m| m.request_bytes),
        answer_bytes: ended.answer_bytes,
        arguments_hash: measured
            .and_then(|m| m.hash)
            .map(|h| format!("fnv1a64:{h:016x}")),
        arguments: measured.and_then(|m| m.values.as_deref()),
    };
    if serde_json::to_writer(&mut *out, &record).is_ok() {
        out.push(b'\n');
    }
}

/// `2026-12-01T12:00:55.123Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Method, ToolLabel};
    use serde_json::Value;

    fn ended(error: ErrorType, code: Option<i64>) -> Ended {
        Ended {
            method: Method::ToolsCall,
            tool: ToolLabel::NONE,
            server: 0,
            elapsed: Duration::from_micros(1500),
            error,
            code,
            answer_bytes: 42,
        }
    }

    fn call(arguments: &str, keep: bool) -> Call {
        let client = Client {
            transport: "streamable_http",
            name: Some("claude".into()),
            version: Some("1.2".into()),
            session: Some("0123abcd".into()),
        };
        let mut call = Call::new(
            client,
            Some("demo".into()),
            "tools/call",
            Some("echo".into()),
        );
        call.keep_arguments = keep;
        let params = crate::rpc::Params::parse(
            format!(r#"{{"name":"echo","arguments":{arguments}}}"#).as_bytes(),
        )
        .unwrap();
        call.measure(&params);
        call
    }

    fn line(call: &Call, ended: &Ended) -> Value {
        let mut out = Vec::new();
        format_line(&mut out, call, ended);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_line_says_who_called_what_and_how_it_ended() {
        let v = line(
            &call(r#"{"text": "secret"}"#, false),
            &ended(ErrorType::None, None),
        );
        assert_eq!(v["client"]["name"], "claude");
        assert_eq!(v["client"]["session"], "0123abcd");
        assert_eq!(v["profile"], "default");
        assert_eq!((&v["server"], &v["tool"]), (&"demo".into(), &"echo".into()));
        assert_eq!(v["durationMs"], 1.5);
        assert_eq!(v["outcome"], "ok");
        assert_eq!(v["answerBytes"], 42);
        assert_eq!(
            v["requestBytes"],
            r#"{"name":"echo","arguments":{"text": "secret"}}"#.len()
        );
        let hash = format!("fnv1a64:{:016x}", fnv1a(br#"{"text": "secret"}"#));
        assert_eq!(v["argumentsHash"], hash.as_str());
        assert!(v.get("arguments").is_none());
        assert!(
            !v.to_string().contains("secret"),
            "no values without auditArguments"
        );
        assert!(v.get("errorCode").is_none() && v.get("errorType").is_none());
        let kept = line(
            &call(r#"{"text": "secret"}"#, true),
            &ended(ErrorType::ToolError, None),
        );
        assert_eq!(kept["arguments"]["text"], "secret");
        assert_eq!(kept["outcome"], "isError");
        let failed = line(
            &call("{}", false),
            &ended(ErrorType::Code(-32602), Some(-32602)),
        );
        assert_eq!(
            (&failed["outcome"], &failed["errorCode"]),
            (&"error".into(), &(-32602).into())
        );
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(bounded("echo".into()), "echo");
        let long = "é".repeat(MAX_TARGET_CHARS + 5);
        let cut = bounded(long);
        assert_eq!(cut.chars().count(), MAX_TARGET_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let at = UNIX_EPOCH + Duration::from_millis(1_795_608_055_123);
        assert_eq!(rfc3339(at), "2026-11-25T12:00:55.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn files_rotate_by_size_keeping_three() {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let settings = Settings {
            target: Target::File(path.clone()),
            max_bytes: 1024,
            arguments: false,
        };
        let (log, writer) = start_with(&settings, 1024).unwrap();
        let call = Arc::new(call("{}", false));
        for _ in 0..100 {
            log.log(call.clone(), ended(ErrorType::None, None));
        }
        let counters = log.counters.clone();
        drop(log);
        writer.finish();
        assert_eq!(counters.written.load(Ordering::Relaxed), 100);
        assert!(counters.rotations.load(Ordering::Relaxed) >= 3);
        let mut total = 0;
        for name in ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.len() <= 1024, "{name} is {} bytes", text.len());
            for l in text.lines() {
                serde_json::from_str::<Value>(l).unwrap();
                total += 1;
            }
        }
        assert!(!dir.join("audit.log.4").exists());
        assert!(total < 100, "older files were dropped");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-audit-q-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tx, _rx) = crossbeam_channel::bounded(2);
        let log = AuditLog {
            tx,
            counters: Default::default(),
            arguments: false,
        };
        let call = Arc::new(call("{}", false));
        for _ in 0..5 {
            log.log(call.clone(), ended(ErrorType::None, None));
        }
        assert_eq!(log.counters.dropped.load(Ordering::Relaxed), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
