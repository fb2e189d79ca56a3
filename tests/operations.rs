//! Operations: what a person running the gateway meets around the protocol. No way to expose the
//! servers to the network by accident (a non-loopback bind needs a token or an explicit yes; the
//! token may live in a private file), `make install` laying out a working installation, `--help`
//! on every subcommand and JSON logs. The real binary throughout.

mod util;

use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::{demo, gateway_binary, temp_dir, Gateway};

/// Runs `command` to its end, killing it (and failing) if it is still running after `timeout`.
fn run_bounded(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} still running after {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The gateway binary on `config` (written to a fresh directory) with `args`, run to its end.
fn run_gateway(config: &Value, args: &[&str]) -> Output {
    let dir = temp_dir("ops-run");
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let output = run_bounded(
        Command::new(gateway_binary())
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("XDG_STATE_HOME", dir.join("state"))
            .env_remove("MCP_GATEWAY_CONFIG")
            .env_remove("RUST_LOG")
            .current_dir(&dir),
        Duration::from_secs(20),
    );
    let _ = std::fs::remove_dir_all(&dir);
    output
}

fn demo_config(gateway: Value) -> Value {
    json!({"gateway": gateway, "servers": [demo("demo", &[])]})
}

fn write_private(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn all_interfaces_without_a_token_is_refused_with_the_fix() {
    let config = demo_config(json!({"port": 0}));
    for args in [&["--host", "0.0.0.0"][..], &["--host=::"][..]] {
        let output = run_gateway(&config, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("refusing to listen")
                && stderr.contains("gateway.authToken")
                && stderr.contains("gateway.authTokenFile")
                && stderr.contains("gateway.allowUnauthenticated: true"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("listening on"), "{stderr}");
    }
    // The same from the file alone.
    let output = run_gateway(&demo_config(json!({"host": "0.0.0.0", "port": 0})), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing to listen on 0.0.0.0"));
}

#[test]
fn allow_unauthenticated_starts_with_a_warning_and_a_health_note() {
    let mut gw = Gateway::start_with(
        demo_config(json!({"allowUnauthenticated": true})),
        &[],
        &["--host", "0.0.0.0"],
    );
    assert!(gw.logs().contains("listening on http://0.0.0.0:"));
    let logs = gw.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("without gateway.authToken"))
        .unwrap_or_else(|| panic!("no warning in:\n{logs}"));
    assert!(warning.contains("WARN"), "{warning}");
    let health = gw.health();
    let notes: Vec<&str> = health["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("gateway.allowUnauthenticated is true")),
        "{notes:?}"
    );
    assert_eq!(gw.get("/tools").status, 200);
    assert!(gw.stop().success());
}

#[test]
fn a_loopback_gateway_has_no_such_note() {
    let gw = Gateway::start(demo_config(json!({})));
    let health = gw.health();
    assert!(
        !health["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("authToken")),
        "{health}"
    );
}

#[test]
fn the_token_may_come_from_a_private_file() {
    let dir = temp_dir("ops-token");
    let file = dir.join("token");
    write_private(&file, "file-s3cret\n", 0o600);
    let gw = Gateway::start_with(
        demo_config(json!({"authTokenFile": file})),
        &[],
        &["--host", "0.0.0.0"],
    );
    assert_eq!(gw.get("/tools").status, 401);
    let wrong = gw.request("GET", "/tools", &[("Authorization", "Bearer nope")], b"");
    assert_eq!(wrong.status, 401);
    let right = gw.request(
        "GET",
        "/tools",
        &[("Authorization", "Bearer file-s3cret")],
        b"",
    );
    assert_eq!(right.status, 200, "{}", right.text());
    assert!(
        !gw.logs().contains("without gateway.authToken"),
        "no warning with a token"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_file_others_may_read_is_refused() {
    let dir = temp_dir("ops-token-open");
    let file = dir.join("token");
    write_private(&file, "s3cret\n", 0o644);
    let output = run_gateway(&demo_config(json!({"port": 0, "authTokenFile": file})), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gateway.authTokenFile:")
            && stderr.contains("mode 0644")
            && stderr.contains("chmod 600"),
        "{stderr}"
    );
    // authToken and authTokenFile together: one or the other.
    write_private(&file, "s3cret\n", 0o600);
    let both = demo_config(json!({"port": 0, "authToken": "x", "authTokenFile": file}));
    let output = run_gateway(&both, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
