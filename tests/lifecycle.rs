//! The gateway process as a supervisor (systemd, Docker, a shell) sees it: SIGTERM and SIGINT with a
//! call in flight (the call finishes, new connections are refused, exit 0, every child reaped), a
//! second SIGTERM cutting the grace period short, what the children inherit (minimal environment plus
//! the configured `env`, `${VAR}` expansion, only fds 0-2, their own process group), children's stderr
//! in the gateway log, the command line's exit codes for config and usage errors, `init`, and
//! `--port 0`.

mod util;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use util::{
    demo, demo_server, gateway_binary, process_exists, read_response, temp_dir, wait_for, Gateway,
    HttpResponse,
};

/// `POST /tools/call` from another thread; None if the connection ended without a response.
fn call_in_background(
    addr: String,
    name: &str,
    arguments: Value,
) -> JoinHandle<Option<HttpResponse>> {
    let body = json!({"name": name, "arguments": arguments}).to_string();
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        write!(
            stream,
            "POST /tools/call HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        read_response(&mut stream)
    })
}

/// Waits until the gateway counts `n` calls in flight.
fn wait_in_flight(gw: &Gateway, n: u64) {
    wait_for(
        Duration::from_secs(10),
        &format!("{n} calls in flight"),
        || (gw.health()["inFlight"] == n).then_some(()),
    );
}

/// Whether a brand-new connection is refused: connect fails, or the gateway answers 503 (or closes
/// without answering).
fn new_connection_refused(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return true;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return true;
    }
    match read_response(&mut stream) {
        None => true,
        Some(response) => response.status == 503,
    }
}

/// Field 5 of /proc/<pid>/stat: the process group.
fn pgrp(pid: u32) -> u32 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &text[text.rfind(')').unwrap() + 2..];
    // After the command: state (3), ppid (4), pgrp (5).
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// The open fds of a process, from /proc/<pid>/fd.
fn open_fds(pid: u32) -> BTreeSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect()
}

/// The text of a successful REST call.
fn call_text(gw: &Gateway, name: &str, arguments: Value) -> String {
    let response = gw.call(name, arguments);
    assert_eq!(response.status, 200, "{name}: {}", response.text());
    let result = response.json()["result"].clone();
    assert_ne!(result["isError"], true, "{name}: {result}");
    result["content"][0]["text"].as_str().unwrap().to_string()
}

/// A running gateway's server children, waited for (at least one).
fn server_children(gw: &Gateway) -> Vec<u32> {
    wait_for(Duration::from_secs(10), "server children", || {
        let children = gw.children();
        (!children.is_empty()).then_some(children)
    })
}

fn assert_all_gone(pids: &[u32]) {
    for pid in pids {
        assert!(
            !process_exists(*pid),
            "child {pid} still exists (running or an unreaped zombie) after the gateway exited: {:?}",
            util::stat(*pid)
        );
    }
}

/// One stop signal with a call in flight: the call completes, new connections are refused while it
/// runs, then exit 0 with every child reaped.
fn graceful_stop_with_a_call_in_flight(signal: i32) {
    let mut gw = Gateway::start(json!({
        "servers": [demo("demo", &["--tools", "sleep,echo"])],
        "pool": {"minConnections": 2},
    }));
    gw.wait_up();
    wait_for(Duration::from_secs(10), "two children", || {
        (gw.children().len() == 2).then_some(())
    });
    let children = gw.children();
    let call = call_in_background(gw.addr(), "sleep", json!({"ms": 1500}));
    wait_in_flight(&gw, 1);

    gw.signal(signal);
    wait_for(
        Duration::from_secs(5),
        "new connections refused after the signal",
        || new_connection_refused(&gw.addr()).then_some(()),
    );
    assert!(
        !call.is_finished(),
        "new connections were refused while the call (sleep 1500 ms) was still running"
    );

    wait_for(Duration::from_secs(10), "the in-flight call to end", || {
        call.is_finished().then_some(())
    });
    let response = call
        .join()
        .unwrap()
        .expect("the in-flight call gets its response");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["result"]["content"][0]["text"],
        "slept 1500 ms"
    );

    let status = gw.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\n{}",
        gw.logs()
    );
    assert_all_gone(&children);
    assert!(gw.logs().contains("stopped"), "{}", gw.logs());
}

#[test]
fn sigterm_lets_the_running_call_finish_refuses_new_connections_and_exits_0_without_children() {
    graceful_stop_with_a_call_in_flight(libc::SIGTERM);
}

#[test]
fn sigint_behaves_like_sigterm() {
    graceful_stop_with_a_call_in_flight(libc::SIGINT);
}

#[test]
fn a_second_sigterm_skips_the_grace_period_and_still_exits_0_without_children() {
    let mut gw = Gateway::start(json!({
        "gateway": {"shutdownTimeout": 10000},
        "servers": [demo("demo", &["--tools", "sleep"])],
    }));
    gw.wait_up();
    let children = server_children(&gw);
    let call = call_in_background(gw.addr(), "sleep", json!({"ms": 20000}));
    wait_in_flight(&gw, 1);

    gw.signal(libc::SIGTERM);
    gw.wait_log("stopping", Duration::from_secs(5));
    let second = Instant::now();
    gw.signal(libc::SIGTERM);
    // The call would run 20 s and the grace period is 10 s: an exit within 7 s of the second signal
    // can only come from skipping the grace.
    let status = gw.wait_exit(Duration::from_secs(7));
    assert!(second.elapsed() < Duration::from_secs(7));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\n{}",
        gw.logs()
    );
    assert_all_gone(&children);
    wait_for(
        Duration::from_secs(5),
        "the abandoned client to see the end",
        || call.is_finished().then_some(()),
    );
    let _ = call.join();
}

#[test]
fn children_get_a_minimal_environment_plus_configured_and_expanded_values() {
    let home = temp_dir("home");
    let home = home.to_str().unwrap();
    let path = std::env::var("PATH").expect("the test runs with a PATH");
    let mut server = demo(
        "envy",
        &[
            "--tools",
            "env",
            "--extra-tool",
            "${TOOL_NAME}",
            "--extra-tool",
            "${UNSET_TOOL_VAR_FOR_TEST:-fallback_tool}",
        ],
    );
    server["env"] = json!({
        "CONFIGURED": "plain value",
        "FROM_VAR": "${EXPANDED_SOURCE}",
        "WITH_DEFAULT": "${UNSET_VAR_FOR_TEST_XYZ:-the default}",
        "SET_WITH_DEFAULT": "${EXPANDED_SOURCE:-unused default}",
    });
    let gw = Gateway::start_with(
        json!({"servers": [server]}),
        &[
            ("HOME", home),
            ("PATH", &path),
            ("SECRET_TEST_VAR", "must not leak"),
            ("EXPANDED_SOURCE", "from the gateway env"),
            ("TOOL_NAME", "tool_from_env"),
        ],
        &[],
    );
    gw.wait_up();
    let env = |name: &str| -> Option<String> {
        let response = gw.call("env", json!({"name": name}));
        assert_eq!(response.status, 200, "{}", response.text());
        let result = response.json()["result"].clone();
        if result["isError"] == true {
            return None;
        }
        Some(result["content"][0]["text"].as_str().unwrap().to_string())
    };
    assert_eq!(env("HOME").as_deref(), Some(home), "HOME is inherited");
    assert_eq!(
        env("PATH").as_deref(),
        Some(path.as_str()),
        "PATH is inherited"
    );
    assert_eq!(env("CONFIGURED").as_deref(), Some("plain value"));
    assert_eq!(env("FROM_VAR").as_deref(), Some("from the gateway env"));
    assert_eq!(env("WITH_DEFAULT").as_deref(), Some("the default"));
    assert_eq!(
        env("SET_WITH_DEFAULT").as_deref(),
        Some("from the gateway env")
    );
    assert_eq!(
        env("SECRET_TEST_VAR"),
        None,
        "a variable only in the gateway's environment must not reach children"
    );
    assert_eq!(
        env("EXPANDED_SOURCE"),
        None,
        "only the expanded value is passed"
    );
    assert_eq!(env("TOOL_NAME"), None);
    assert_eq!(
        env("RUST_LOG"),
        None,
        "the gateway's RUST_LOG is not passed on"
    );

    // ${VAR} and ${VAR:-default} in command arguments.
    let tools = gw.get("/tools").json();
    let names: BTreeSet<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["env", "tool_from_env", "fallback_tool"]
            .into_iter()
            .collect(),
    );
    assert_eq!(call_text(&gw, "tool_from_env", json!({"text": "a"})), "a");
    assert_eq!(call_text(&gw, "fallback_tool", json!({"text": "b"})), "b");
    let _ = std::fs::remove_dir_all(home);
}

/// Where an fd of a process points (`/proc/<pid>/fd/<fd>`).
fn fd_target(pid: u32, fd: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

#[test]
fn children_get_none_of_the_gateways_own_fds() {
    let gw = Gateway::start(json!({
        "servers": [demo("a", &["--tools", "echo"]), demo("b", &["--tools", "pid"])],
        "mapping": {"b": {"prefix": "b_"}},
    }));
    gw.wait_up();
    // A call and an open SSE stream first, so the gateway holds client sockets too.
    assert_eq!(call_text(&gw, "echo", json!({"text": "x"})), "x");
    let _session = gw.sse();
    let children = wait_for(Duration::from_secs(10), "two children", || {
        let children = gw.children();
        (children.len() == 2).then_some(children)
    });
    let me = std::process::id();
    for pid in children {
        let fds = open_fds(pid);
        assert!(fds.is_superset(&BTreeSet::from([0, 1, 2])), "{fds:?}");
        // Anything beyond 0-2 may only be an fd this test process itself handed down to the gateway
        // (see the next test for those); never one of the gateway's sockets, pipes or files.
        for fd in fds.into_iter().filter(|fd| *fd > 2) {
            let target = fd_target(pid, fd);
            assert!(
                target.is_some() && target == fd_target(me, fd),
                "child {pid} has the gateway's fd {fd} ({target:?}) open"
            );
        }
    }
}

#[test]
fn children_have_only_fds_0_1_2_even_when_the_gateway_inherited_more() {
    // The gateway is started with an extra fd 77 that is not close-on-exec, as a careless parent
    // (a shell, a job runner) leaves it. Its children must not see it.
    const LEAKED: i32 = 77;
    let null = std::fs::File::open("/dev/null").unwrap();
    let (dir, path) = config_file(
        "inherited-fd",
        &json!({"gateway": {"port": 0}, "servers": [demo("demo", &["--tools", "echo"])]}),
    );
    let mut gw = Raw::start_inheriting(&["--config", &path], &dir, Some((&null, LEAKED)));
    gw.wait_line("listening on http://")
        .unwrap_or_else(|| panic!("the gateway exited:\n{}", gw.log));
    let gateway = gw.child.id();
    assert!(
        open_fds(gateway).contains(&(LEAKED as u32)),
        "premise: the gateway holds fd {LEAKED}"
    );
    // A child counts once it runs the server: between fork and exec it is still a copy of the
    // gateway, with the gateway's fds.
    let gateway_exe = std::fs::read_link(format!("/proc/{gateway}/exe")).ok();
    let children = wait_for(Duration::from_secs(10), "a server child", || {
        let children = util::children_of(gateway);
        let execed = children
            .iter()
            .all(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok() != gateway_exe);
        (!children.is_empty() && execed).then_some(children)
    });
    // The kernel shows the new executable a moment before it closes the close-on-exec fds (std's
    // exec-error pipe among them): a leak is an fd that stays, so look until the set settles.
    for pid in children {
        let settled = wait_until(Duration::from_secs(5), || {
            open_fds(pid) == BTreeSet::from([0, 1, 2])
        });
        assert!(
            settled,
            "open fds of child {pid}: {:?} (fd {LEAKED} is the gateway's inherited /dev/null)",
            open_fds(pid)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn each_child_leads_its_own_process_group() {
    let gw = Gateway::start(json!({"servers": [demo("demo", &["--tools", "pid"])]}));
    gw.wait_up();
    let children = server_children(&gw);
    let gateway_group = pgrp(gw.pid());
    for pid in children {
        assert_eq!(pgrp(pid), pid, "child {pid} leads its own group");
        assert_ne!(pgrp(pid), gateway_group);
    }
    // The pid the server reports is the child the gateway started.
    let reported = gw.call("pid", json!({})).json()["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap() as u32;
    assert_eq!(pgrp(reported), reported);
}

#[test]
fn child_stderr_lines_are_logged_with_the_server_name() {
    let gw = Gateway::start(json!({
        "servers": [demo("noisy", &["--tools", "log,pid", "--stderr-lines", "3"])],
    }));
    gw.wait_up();
    let pid = gw.call("pid", json!({})).json()["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap();
    let prefix = "noisy#";
    let labelled = format!("(pid {pid}): ");
    for i in 1..=3 {
        let line = format!("demo: starting line {i}");
        gw.wait_log(&line, Duration::from_secs(5));
        let logs = gw.logs();
        assert!(
            logs.lines()
                .any(|l| l.contains(prefix) && l.contains(&format!("{labelled}{line}"))),
            "no `noisy#N (pid {pid}): {line}` in the log:\n{logs}"
        );
    }
    assert_eq!(
        call_text(&gw, "log", json!({"message": "hello from the log tool"})),
        "logged"
    );
    gw.wait_log("demo: hello from the log tool", Duration::from_secs(5));
    let logs = gw.logs();
    assert!(
        logs.lines().any(|l| l.contains(prefix)
            && l.contains(&format!("{labelled}demo: hello from the log tool"))),
        "{logs}"
    );
}

/// Runs the gateway binary to completion with a deadline; returns (exit code, stdout, stderr).
fn run_cli(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (i32, String, String) {
    let mut command = Command::new(gateway_binary());
    command
        .args(args)
        .env("XDG_STATE_HOME", cwd.join("state"))
        .env_remove("MCP_GATEWAY_CONFIG")
        .env("HOME", cwd)
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("run mcp-gateway");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = wait_for(
        Duration::from_secs(20),
        &format!("mcp-gateway {args:?} to exit"),
        || child.try_wait().unwrap(),
    );
    let _ = child.kill();
    (
        status.code().expect("exited, not killed by a signal"),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// Writes `config` to a fresh file; returns (dir, path).
fn config_file(tag: &str, config: &Value) -> (std::path::PathBuf, String) {
    let dir = temp_dir(tag);
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn an_unknown_config_key_exits_2_naming_the_path_and_suggesting_the_key() {
    let (dir, path) = config_file(
        "unknown-key",
        &json!({"gateway": {"prot": 4000}, "servers": [demo("demo", &[])]}),
    );
    let (code, stdout, stderr) = run_cli(&["--config", &path, "--port", "0"], &[], &dir);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("gateway.prot"), "{stderr}");
    assert!(stderr.contains("did you mean \"port\""), "{stderr}");
    assert!(
        stderr.contains(&path),
        "the message names the file: {stderr}"
    );

    let (dir2, path2) = config_file(
        "unknown-server-key",
        &json!({"servers": [{"name": "demo", "command": [demo_server()], "comand": ["x"]}]}),
    );
    let (code, _, stderr) = run_cli(&["check", "--config", &path2], &[], &dir2);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("servers[0].comand") && stderr.contains("\"command\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}

#[test]
fn a_server_without_a_command_exits_2() {
    let (dir, path) = config_file("no-command", &json!({"servers": [{"name": "demo"}]}));
    let (code, stdout, stderr) = run_cli(&["--config", &path, "--port", "0"], &[], &dir);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("servers[0]"), "{stderr}");
    assert!(stderr.contains("command"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mcp_gateway_config_naming_a_missing_file_exits_2_naming_it() {
    let dir = temp_dir("env-config");
    // A usable fallback exists: the explicit choice must still win and fail.
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config").join("servers.json"),
        json!({"servers": [demo("demo", &[])]}).to_string(),
    )
    .unwrap();
    let missing = dir.join("nowhere").join("missing-config.json");
    let missing = missing.to_str().unwrap();
    let (code, stdout, stderr) =
        run_cli(&["--port", "0"], &[("MCP_GATEWAY_CONFIG", missing)], &dir);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains(missing), "{stderr}");
    assert!(stderr.contains("MCP_GATEWAY_CONFIG"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn init_writes_valid_json_and_refuses_to_overwrite_without_force() {
    let dir = temp_dir("init");
    let path = dir.join("sub").join("config.json");
    let path_str = path.to_str().unwrap();
    let (code, stdout, stderr) = run_cli(&["init", path_str], &[], &dir);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("init writes JSON");
    assert!(written["servers"].is_array(), "{written}");

    std::fs::write(&path, "{\"mine\": true}").unwrap();
    let (code, _, stderr) = run_cli(&["init", path_str], &[], &dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"mine\": true}",
        "not overwritten"
    );

    let (code, _, stderr) = run_cli(&["init", path_str, "--force"], &[], &dir);
    assert_eq!(code, 0, "{stderr}");
    let rewritten: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(rewritten, written, "--force writes the example again");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn usage_exit_codes_help_0_unknown_command_2_bad_port_2() {
    let dir = temp_dir("usage");
    let (code, stdout, _) = run_cli(&["--help"], &[], &dir);
    assert_eq!(code, 0);
    assert!(stdout.contains("Usage"), "{stdout}");

    let (code, _, stderr) = run_cli(&["frobnicate"], &[], &dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("frobnicate"), "{stderr}");

    let (_, path) = config_file("usage-config", &json!({"servers": [demo("demo", &[])]}));
    let (code, _, stderr) = run_cli(&["--config", &path, "--port", "70000"], &[], &dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("70000"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(Path::new(&path).parent().unwrap());
}

/// A gateway started by hand (the harness forces port 0 in the config; this test needs the flag).
struct Raw {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: String,
}

impl Raw {
    fn start(args: &[&str], cwd: &Path) -> Raw {
        Raw::start_inheriting(args, cwd, None)
    }

    /// Same; `inherit` = (file, fd): the gateway starts with `file` open as `fd`, not close-on-exec.
    fn start_inheriting(args: &[&str], cwd: &Path, inherit: Option<(&std::fs::File, i32)>) -> Raw {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(gateway_binary());
        command
            .args(args)
            .env("XDG_STATE_HOME", cwd.join("state"))
            .env_remove("MCP_GATEWAY_CONFIG")
            .env("RUST_LOG", "info")
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((file, fd)) = inherit {
            let source = file.as_raw_fd();
            // SAFETY: dup2 is async-signal-safe; the new fd has no FD_CLOEXEC.
            unsafe {
                command.pre_exec(move || {
                    if libc::dup2(source, fd) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("start mcp-gateway");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Raw {
            child,
            lines,
            log: String::new(),
        }
    }

    /// Waits for a log line containing `needle`; None if the process exited first.
    fn wait_line(&mut self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no log line with {needle:?}:\n{}", self.log)
                }
            }
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn port_flag_0_overrides_the_config_and_the_log_names_the_chosen_port() {
    // The config's port is taken, so only the flag can make the gateway start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let (dir, path) = config_file(
        "port",
        &json!({"gateway": {"port": taken_port}, "servers": [demo("demo", &["--tools", "echo"])]}),
    );

    let mut refused = Raw::start(&["--config", &path], &dir);
    let status = wait_for(Duration::from_secs(20), "the gateway to fail", || {
        refused.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(1), "the configured port is taken");

    let mut gw = Raw::start(&["--config", &path, "--port", "0"], &dir);
    let line = gw
        .wait_line("listening on http://")
        .unwrap_or_else(|| panic!("the gateway exited:\n{}", gw.log));
    let marker = "listening on http://127.0.0.1:";
    let at = line
        .find(marker)
        .unwrap_or_else(|| panic!("log says {marker}<port>: {line}"));
    let port: u16 = line[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    assert_ne!(port, taken_port);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the logged port listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let health = read_response(&mut stream).expect("a response");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["servers"][0]["name"], "demo");

    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(gw.child.id() as i32, libc::SIGTERM);
    }
    let status = wait_for(Duration::from_secs(20), "the gateway to exit", || {
        gw.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    drop(taken);
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether `check` holds within `timeout` (looked at every 10 ms).
fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let give_up = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= give_up {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
