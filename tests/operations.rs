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

/// `make install DESTDIR=… PREFIX=/usr` with the binary these tests built (`BINARY=`, so no release
/// build runs here), then `make uninstall`.
#[test]
fn make_install_lays_out_a_working_installation() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dest = temp_dir("ops-install");
    let make = |target: &str| {
        let output = run_bounded(
            Command::new("make")
                .current_dir(root)
                .arg("--no-print-directory")
                .arg(target)
                .arg(format!("DESTDIR={}", dest.display()))
                .arg("PREFIX=/usr")
                .arg(format!("BINARY={}", gateway_binary())),
            Duration::from_secs(60),
        );
        assert!(
            output.status.success(),
            "make {target} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    make("install");
    let at = |p: &str| dest.join(p.trim_start_matches('/'));
    let binary = at("/usr/bin/mcp-gateway");
    let bridge = at("/usr/bin/mcp-gateway-bridge");
    let unit = at("/usr/lib/systemd/system/mcp-gateway.service");
    for file in [
        &binary,
        &unit,
        &at("/usr/share/mcp-gateway/servers.example.json"),
        &at("/usr/share/doc/mcp-gateway/LICENSE"),
        &at("/usr/share/doc/mcp-gateway/README.md"),
        &at("/usr/share/doc/mcp-gateway/README.zh-CN.md"),
    ] {
        assert!(file.is_file(), "{} missing", file.display());
    }
    assert_eq!(
        std::fs::read_link(&bridge).unwrap(),
        Path::new("mcp-gateway")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&binary).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
    // The installed binary runs, and so does the bridge through its link.
    let version = run_bounded(
        Command::new(&binary).arg("--version"),
        Duration::from_secs(10),
    );
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("mcp-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    let bridge_help = run_bounded(Command::new(&bridge).arg("--help"), Duration::from_secs(10));
    assert!(bridge_help.status.success(), "{bridge_help:?}");
    // The example config is a valid config (`check` would start its servers; loading is enough).
    let example =
        std::fs::read_to_string(at("/usr/share/mcp-gateway/servers.example.json")).unwrap();
    mcp_gateway::config::parse_str(&example, &|_| None).expect("the example config loads");
    // The unit runs the installed binary, hardened.
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "ExecStart=/usr/bin/mcp-gateway serve --config /etc/mcp-gateway/config.json",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=mixed",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=mcp-gateway",
        "Environment=XDG_STATE_HOME=%S",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in the unit");
    }
    assert!(!text.contains("/usr/local/"), "PREFIX not applied:\n{text}");
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(found) if found.status.success() => {
            // `verify` checks that ExecStart exists: point it at the binary under DESTDIR.
            let copy = dest.join("mcp-gateway.service");
            std::fs::write(
                &copy,
                text.replace(
                    "ExecStart=/usr/bin/mcp-gateway",
                    &format!("ExecStart={}", binary.display()),
                ),
            )
            .unwrap();
            let verify = run_bounded(
                Command::new("systemd-analyze").arg("verify").arg(&copy),
                Duration::from_secs(30),
            );
            let complaints = String::from_utf8_lossy(&verify.stderr);
            assert!(
                verify.status.success(),
                "systemd-analyze verify:\n{complaints}"
            );
            assert!(
                !complaints.contains("mcp-gateway.service:"),
                "systemd-analyze verify complains:\n{complaints}"
            );
        }
        _ => eprintln!("note: systemd-analyze not found; the unit was not verified"),
    }
    make("uninstall");
    for file in [&binary, &bridge, &unit] {
        assert!(
            std::fs::symlink_metadata(file).is_err(),
            "{} left behind",
            file.display()
        );
    }
    assert!(!at("/usr/share/mcp-gateway").exists());
    assert!(!at("/usr/share/doc/mcp-gateway").exists());
    let _ = std::fs::remove_dir_all(&dest);
}

#[test]
fn every_subcommand_has_its_own_help() {
    let cases = [
        (vec!["serve", "--help"], "mcp-gateway serve:", "--host HOST"),
        (vec!["check", "--help"], "mcp-gateway check:", "collisions"),
        (vec!["init", "-h"], "mcp-gateway init:", "--force"),
        (
            vec!["bridge", "--help"],
            "mcp-gateway bridge:",
            "--reconnect-timeout",
        ),
        (vec!["help", "check"], "mcp-gateway check:", "collisions"),
        (
            vec!["status", "--help"],
            "mcp-gateway status:",
            "--token TOKEN",
        ),
        (
            vec!["--config", "x.json", "--help"],
            "mcp-gateway serve:",
            "--port",
        ),
        (vec!["--help"], "Usage:", "COMMAND --help"),
    ];
    for (args, head, detail) in cases {
        let output = run_bounded(
            Command::new(gateway_binary()).args(&args),
            Duration::from_secs(10),
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}: {output:?}");
        assert!(
            stdout.contains(head) && stdout.contains(detail),
            "{args:?}:\n{stdout}"
        );
        assert!(
            stdout.contains("--log-format"),
            "{args:?} does not mention --log-format"
        );
    }
    // Help never runs the command: `check --help` starts no server, `init --help` writes nothing.
    let dir = temp_dir("ops-help");
    let target = dir.join("config.json");
    let output = run_bounded(
        Command::new(gateway_binary())
            .arg("init")
            .arg(&target)
            .arg("--help"),
        Duration::from_secs(10),
    );
    assert!(output.status.success());
    assert!(!target.exists());
    let output = run_bounded(
        Command::new(gateway_binary()).args(["help", "nope"]),
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no help on nope"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every stderr line of a gateway run with JSON logs, parsed.
fn json_log_lines(gw: &mut Gateway) -> Vec<Value> {
    gw.wait_up();
    assert!(gw.stop().success());
    gw.wait_log("\"message\":\"stopped\"", Duration::from_secs(10));
    gw.logs()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"))
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line() {
    let config = json!({"servers": [demo("demo", &[])]});
    let mut gw = Gateway::start_with(config.clone(), &[], &["--log-format", "json"]);
    let lines = json_log_lines(&mut gw);
    assert!(lines.len() > 3, "{lines:?}");
    for line in &lines {
        for key in ["time", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} missing in {line}");
        }
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&line["level"].as_str().unwrap()),
            "{line}"
        );
    }
    let about_demo: Vec<&Value> = lines.iter().filter(|l| l["server"] == "demo").collect();
    assert!(
        about_demo.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .starts_with("server demo: started")),
        "no start line for demo in {lines:?}"
    );
    assert!(lines.iter().any(|l| l["message"]
        .as_str()
        .unwrap()
        .contains("listening on http://")
        && l.get("server").is_none()));

    // The same from the environment, and a wrong value is a usage error.
    let mut gw = Gateway::start_with(config, &[("MCP_GATEWAY_LOG_FORMAT", "json")], &[]);
    assert!(json_log_lines(&mut gw).len() > 3);
    let output = run_bounded(
        Command::new(gateway_binary()).args(["check", "--log-format", "yaml"]),
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("takes text or json"));
}

/// The unit's `ExecReload` sends SIGHUP: it reloads the config and must never stop the gateway (it
/// would by default). What a reload does is in tests/reload.rs.
#[test]
fn sighup_reloads_and_is_survived() {
    let mut gw = Gateway::start(demo_config(json!({})));
    gw.wait_up();
    gw.signal(libc::SIGHUP);
    gw.wait_log("SIGHUP received", Duration::from_secs(10));
    gw.wait_log("nothing changed", Duration::from_secs(10));
    assert!(gw.child.try_wait().unwrap().is_none(), "SIGHUP stopped it");
    assert_eq!(gw.health()["status"], "ok");
    assert!(gw.stop().success());
}

#[test]
fn status_prints_each_servers_state_processes_and_errors() {
    let gw = Gateway::start(json!({
        "gateway": {"authToken": "s3cret"},
        "servers": [demo("demo", &[]), {"name": "broken", "command": ["/bin/sh", "-c", "echo 'fatal: no such thing' >&2; exit 3"]}],
        "mapping": {"broken": {"prefix": "b_"}},
    }));
    util::wait_for(
        Duration::from_secs(10),
        "demo up and broken failing",
        || {
            (gw.server_health("demo")["status"] == "up"
                && gw.server_health("broken")["restarts"].as_u64() >= Some(1))
            .then_some(())
        },
    );
    let url = format!("http://{}", gw.addr());
    let status = |token: Option<&str>| {
        let mut command = Command::new(gateway_binary());
        command
            .arg("status")
            .arg(&url)
            .env_remove("MCP_GATEWAY_TOKEN");
        if let Some(token) = token {
            command.arg("--token").arg(token);
        }
        run_bounded(&mut command, Duration::from_secs(20))
    };
    let full = status(Some("s3cret"));
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let table = String::from_utf8_lossy(&full.stdout).to_string();
    let demo_pid = gw.children().into_iter().next().expect("the demo process");
    let demo_row = table
        .lines()
        .find(|l| l.starts_with("demo"))
        .unwrap_or_default();
    assert!(demo_row.contains("up"), "{table}");
    assert!(
        demo_row.contains(&demo_pid.to_string()),
        "the demo's pid: {table}"
    );
    let broken_row = table
        .lines()
        .find(|l| l.starts_with("broken"))
        .unwrap_or_default();
    assert!(broken_row.contains("down"), "{table}");
    assert!(broken_row.contains("fatal: no such thing"), "{table}");
    assert!(
        table.lines().next().unwrap().contains("sessions"),
        "{table}"
    );
    // Without the token: only the state, and how to see more.
    let short = status(None);
    assert!(short.status.success());
    let text = String::from_utf8_lossy(&short.stdout);
    assert!(
        text.contains("degraded") && text.contains("--token"),
        "{text}"
    );
    assert!(!text.contains("broken"), "{text}");
    // Nobody there: exit 1 with a sentence.
    drop(gw);
    let gone = status(None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot reach the gateway"));
}
