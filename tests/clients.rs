//! Client configs pasted whole, and `mcp-gateway import`: the real binary loads a complete Claude
//! Desktop file, Cline's and Roo's entries, VS Code's `servers` and Cursor's `mcp.json` as they
//! are (with the official `server-memory` as a real server among them), and `import --write`
//! moves a client's servers into a running gateway's config, which picks them up by itself.

mod util;

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use util::{demo_server, installed, wait_for, Gateway};

fn memory() -> Value {
    let server = installed("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    json!({"command": "node", "args": [server]})
}

#[test]
fn a_whole_claude_desktop_file_with_cline_and_roo_entries_loads_as_it_is() {
    let file = json!({
        "globalShortcut": "Alt+Space",
        "preferences": {"menuBarEnabled": false},
        "mcpServers": {
            "memory": memory(),
            "demo": {"command": demo_server(), "args": ["--tools", "echo,add"],
                     "autoApprove": ["echo"], "timeout": 30},
            "off": {"command": demo_server(), "disabled": true, "alwaysAllow": []},
            "roo": {"command": demo_server(), "args": ["--tools", "pid", "--name", "roo"],
                    "type": "stdio", "watchPaths": ["x"], "disabledTools": ["pid"]},
        },
    });
    let gw = Gateway::start_file(
        "claude_desktop_config.json",
        &serde_json::to_string_pretty(&file).unwrap(),
        &[],
    );
    let health = gw.wait_up();
    let notes = health["notes"].to_string();
    assert!(
        notes.contains("its other top-level keys are ignored (globalShortcut, preferences)"),
        "{notes}"
    );
    assert!(notes.contains("mcpServers.demo.autoApprove"), "{notes}");
    assert_eq!(gw.server_health("off")["status"], "disabled");
    let names = gw.tool_names();
    assert!(names.contains(&"create_entities".to_string()), "{names:?}");
    assert!(names.contains(&"echo".to_string()) && names.contains(&"add".to_string()));
    assert!(
        !names.contains(&"pid".to_string()),
        "disabledTools is honoured: {names:?}"
    );
    let answer = gw.call("echo", json!({"text": "pasted"}));
    assert_eq!(answer.json()["result"]["content"][0]["text"], "pasted");
}

#[test]
fn vs_code_and_cursor_files_load_as_they_are() {
    // VS Code: `servers` keyed by name, with `type`, `envFile` and `${env:…}`; `inputs` ignored.
    let secrets = util::temp_dir("vscode-env");
    let env_file = secrets.join("demo.env");
    std::fs::write(
        &env_file,
        "# secrets\nexport FROM_FILE=\"file value\"\nBOTH=file\n",
    )
    .unwrap();
    let vscode = json!({
        "inputs": [{"type": "promptString", "id": "key", "password": true}],
        "servers": {
            "demo": {"type": "stdio", "command": demo_server(), "args": ["--tools", "env"],
                     "envFile": env_file, "env": {"BOTH": "config", "HOME_TOO": "${env:HOME}"}},
        },
    });
    let gw = Gateway::start_file(".vscode/mcp.json", &vscode.to_string(), &[]);
    let health = gw.wait_up();
    assert!(
        health["notes"].to_string().contains("ignored (inputs)"),
        "{health}"
    );
    let env = |name: &str| {
        gw.call("env", json!({ "name": name })).json()["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(env("FROM_FILE"), "file value");
    assert_eq!(
        env("BOTH"),
        "config",
        "the entry's own env wins over its envFile"
    );
    assert_eq!(env("HOME_TOO"), std::env::var("HOME").unwrap());

    // Cursor: `mcpServers` with a remote `url`; here another gateway is the remote.
    let upstream = Gateway::start(json!({"servers": [util::demo("demo", &["--tools", "add"])]}));
    upstream.wait_up();
    let cursor = json!({"mcpServers": {
        "far": {"url": format!("http://{}/mcp", upstream.addr())},
    }});
    let gw = Gateway::start_file(".cursor/mcp.json", &cursor.to_string(), &[]);
    gw.wait_up();
    let sum = gw.call("add", json!({"a": 2, "b": 3}));
    assert_eq!(
        sum.json()["result"]["structuredContent"]["sum"],
        5,
        "{}",
        sum.text()
    );
}

#[test]
fn import_write_moves_a_clients_servers_into_a_running_gateway() {
    let gw = Gateway::start(json!({"servers": [util::demo("demo", &["--tools", "echo"])]}));
    gw.wait_up();
    let dir = util::temp_dir("import");
    let client = dir.join("claude_desktop_config.json");
    std::fs::write(
        &client,
        // As Claude Desktop's editor leaves it: a comment and a trailing comma.
        format!(
            "{{\n  // mine\n  \"mcpServers\": {{\n    \"memory\": {},\n    \"old\": {{\"command\": \"{}\", \"args\": [\"--tools\", \"add\"], \"autoApprove\": [\"add\"]}},\n  }}\n}}\n",
            memory(),
            demo_server()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(util::gateway_binary())
            .arg("import")
            .arg(&client)
            .args(["--config"])
            .arg(&gw.config_path)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    // Printed only: the config is untouched; the client's entry names the bridge and the URL.
    let before = std::fs::read(&gw.config_path).unwrap();
    let printed = run(&["--url", "http://127.0.0.1:9/mcp"]);
    assert_eq!(std::fs::read(&gw.config_path).unwrap(), before);
    assert!(
        printed.contains("2 servers from") && printed.contains("Claude Desktop"),
        "{printed}"
    );
    assert!(
        printed.contains("left out, only Claude Desktop uses them: old.autoApprove"),
        "{printed}"
    );
    assert!(printed.contains("mcp-gateway-bridge") && printed.contains("http://127.0.0.1:9/mcp"));

    let written = run(&["--write"]);
    assert!(
        written.contains("added to") && written.contains("memory, old"),
        "{written}"
    );
    let config: Value = serde_json::from_slice(&std::fs::read(&gw.config_path).unwrap()).unwrap();
    assert!(config["mcpServers"]["old"].get("autoApprove").is_none());
    // The running gateway watches its file: the imported servers come up without a restart.
    wait_for(
        Duration::from_secs(60),
        "the imported servers' tools",
        || {
            let names = gw.tool_names();
            (names.contains(&"create_entities".to_string()) && names.contains(&"add".to_string()))
                .then_some(())
        },
    );
    let again = run(&["--write"]);
    assert!(again.contains("already has them: memory, old"), "{again}");
}

#[test]
fn import_refuses_what_the_gateway_could_not_load() {
    let dir = util::temp_dir("import-bad");
    let client = dir.join("mcp.json");
    std::fs::write(
        &client,
        r#"{"mcpServers": {"x": {"command": "npx -y thing"}}}"#,
    )
    .unwrap();
    let out = Command::new(util::gateway_binary())
        .args(["import"])
        .arg(&client)
        .args(["--config"])
        .arg(dir.join("gw.json"))
        .args(["--write"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("contains spaces, but no shell is used"),
        "{err}"
    );
    assert!(!dir.join("gw.json").exists(), "nothing written");
}
