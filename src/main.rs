//! The `mcp-gateway` command line: `serve` (the default), `check`, `init`, `bridge`, `status`,
//! `diff`, `approve`, each with its own `--help`; `--log-format` for all. Started as
//! `mcp-gateway-bridge` (a link to this binary), it is the bridge.
//!
//! Exit codes: 0 success; 1 a runtime failure (cannot listen, a server failed in `check`); 2 a usage
//! or configuration error.

use mcp_gateway::{bridge, config, gateway, import, logging, reload, status};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
mcp-gateway: one endpoint for many MCP servers, with pooled, shared server processes.

Usage:
  mcp-gateway [serve] [--config PATH] [--host HOST] [--port PORT]
      Run the gateway in the foreground (logs on stderr; RUST_LOG sets the level).
  mcp-gateway check [--config PATH]
      Start every server once, print the tools clients will see and any name collisions, and stop.
      Exits 1 if an enabled server does not come up.
  mcp-gateway init [PATH] [--force]
      Write an example config to PATH (default ~/.config/mcp-gateway/config.json).
  mcp-gateway bridge [URL] [--token TOKEN] [--reconnect-timeout MS]
      A stdio MCP server for clients that only launch stdio servers: relays everything to the
      gateway at URL (default $MCP_GATEWAY_URL, else http://127.0.0.1:4298/mcp). The token
      defaults to $MCP_GATEWAY_TOKEN. Also runs as `mcp-gateway-bridge [URL] ...` (a link to
      this binary under that name). Logs only warnings unless RUST_LOG says otherwise.
  mcp-gateway status [URL] [--token TOKEN]
      What a running gateway is doing: each server's state, processes (pid, memory), calls in
      flight, calls, failures, last error and next retry; sessions by transport.
  mcp-gateway reload [--config PATH] [--pid PID]
      Make the running gateway reload its config (SIGHUP), and print what changed.
  mcp-gateway import FILE [--write] [--config PATH] [--url URL]
      The servers of a client's MCP config (Claude Desktop, Claude Code, Cursor, Cline, Roo,
      VS Code), for the gateway's config (--write merges them in), and the one entry that client
      needs instead.
  mcp-gateway diff [SERVER] [--config PATH]
      How each pinned tool definition differs from what its server lists now, field by field.
  mcp-gateway approve SERVER [TOOL...] [--config PATH]
      Accept the current definitions of SERVER's tools (all, or those named); a running gateway
      lists held tools again without a restart.
  mcp-gateway login SERVER [--config PATH] [--no-browser] [--timeout SECONDS]
      Log in to a remote server with \"auth\": {\"type\": \"oauth\"}: prints the authorization URL,
      takes the redirect on a loopback port, and saves the tokens where the running gateway
      picks them up (no restart).
  mcp-gateway logout SERVER [--config PATH]
      Forget SERVER's tokens.
  mcp-gateway COMMAND --help      what one command does, in full
  mcp-gateway --version | --help

Every command takes --log-format text|json (or $MCP_GATEWAY_LOG_FORMAT): json writes one JSON
object per log line (time, level, target, server, message).

Config lookup: --config PATH, else $MCP_GATEWAY_CONFIG, else ~/.config/mcp-gateway/config.json,
else ./config/servers.json.
";

const SERVE_HELP: &str = "\
mcp-gateway serve: run the gateway in the foreground (the default command).

Usage: mcp-gateway [serve] [--config PATH] [--host HOST] [--port PORT] [--log-format text|json]

Serves every enabled server of the config on one endpoint: MCP over Streamable HTTP at /mcp,
HTTP+SSE at /sse, REST at /tools, and /health; each profile of the config at /mcp/<profile>,
/sse/<profile> and /tools?profile=<profile>. Logs on stderr (RUST_LOG sets the level, default
info). SIGTERM or SIGINT stops it gracefully (a second one skips the wait for running calls).

Options:
  -c, --config PATH   the config file (else $MCP_GATEWAY_CONFIG, ~/.config/mcp-gateway/config.json,
                      ./config/servers.json)
      --host HOST     overrides gateway.host (default 127.0.0.1). A non-loopback address needs
                      gateway.authToken or gateway.authTokenFile, or gateway.allowUnauthenticated: true
  -p, --port PORT     overrides gateway.port (default 4298; 0 picks a free port)
      --log-format F  text (default) or json: one JSON object per log line

Exit codes: 0 stopped cleanly; 1 cannot listen or start; 2 usage or configuration error.
";

const CHECK_HELP: &str = "\
mcp-gateway check: start every server once, show what clients will see, and stop.

Usage: mcp-gateway check [--config PATH] [--log-format text|json]

Prints each server's state and tool count, every tool name clients will see (with the server and
original name behind it), name collisions and notes. Nothing listens; servers' saved lists in the
state dir are not used.

Options:
  -c, --config PATH   the config file (same lookup as serve)
      --log-format F  text (default) or json

Exit codes: 0 every enabled server came up; 1 one did not; 2 usage or configuration error.
";

const INIT_HELP: &str = "\
mcp-gateway init: write an example config to start from.

Usage: mcp-gateway init [PATH] [--force] [--log-format text|json]

Writes the example config (a few well-known MCP servers) to PATH,
default ~/.config/mcp-gateway/config.json ($XDG_CONFIG_HOME respected). An existing file is
never overwritten without --force.

Options:
  -f, --force         overwrite PATH if it exists
      --log-format F  text (default) or json

Exit codes: 0 written; 2 PATH exists (without --force) or cannot be written.
";

const BRIDGE_HELP: &str = "\
mcp-gateway bridge: a stdio MCP server that relays to a running gateway.

Usage: mcp-gateway bridge [URL] [--token TOKEN] [--reconnect-timeout MS]
       mcp-gateway-bridge [URL] ...   (the same, through the installed link)

For clients that only launch stdio servers (Claude Desktop): configure the bridge as the one
server; it speaks MCP on stdin/stdout and relays every message to the gateway's /mcp endpoint,
reconnecting when the gateway restarts. Logs only warnings on stderr unless RUST_LOG says otherwise.

Arguments and options:
  URL                       the gateway's MCP endpoint (default $MCP_GATEWAY_URL, else
                            http://127.0.0.1:4298/mcp)
  --token TOKEN             the gateway's authToken (default $MCP_GATEWAY_TOKEN)
  --reconnect-timeout MS    how long a message waits for the gateway to be reachable before
                            the client gets an error (default 10000)
  --log-format F            text (default) or json

Exit codes: 0 stdin closed; 1 a runtime failure; 2 usage error.
";

const STATUS_HELP: &str = "\
mcp-gateway status: what a running gateway is doing, as a table.

Usage: mcp-gateway status [URL] [--token TOKEN] [--log-format text|json]

Asks a running gateway for its /health and prints it as a table: for each server its state, its
processes with pid and resident memory (or its remote sessions), calls in flight, calls served,
calls that failed, restarts, when the next start is attempted while it fails, and its last error;
then the sessions by transport, the profiles (tools and estimated tokens listed), tools whose
definitions changed since pinned, the last config reload, and any notes.

Arguments and options:
  URL              the gateway (default $MCP_GATEWAY_URL, else http://127.0.0.1:4298)
  --token TOKEN    the gateway's authToken (default $MCP_GATEWAY_TOKEN); without it a gateway
                   with a token tells only whether it is ok

Exit codes: 0 the gateway answered (whatever its state); 1 it could not be reached; 2 usage error.
";

const RELOAD_HELP: &str = "\
mcp-gateway reload: make the running gateway reload its config, and say what changed.

Usage: mcp-gateway reload [--config PATH] [--pid PID] [--log-format text|json]

Sends SIGHUP to the gateway named by the pid file in the config's state dir
(gateway.stateDir, default $XDG_STATE_HOME/mcp-gateway, else ~/.local/state/mcp-gateway), or to
--pid. The gateway reads its config file again: a file that does not validate is refused and the
config in force stays; a valid one is applied as a diff (unchanged servers keep their processes
and calls, changed ones restart, removed ones stop, new ones start; sessions stay connected).
Then this waits up to 15 s for the gateway's /health to report the reload and prints its summary.
(`systemctl reload` and `kill -HUP` do the same; with gateway.watchConfig, saving the file does too.)

Options:
  -c, --config PATH   the config file the gateway runs (same lookup as serve): where its state
                      dir, address and token are read from
      --pid PID       signal this process instead of the one in the pid file
      --log-format F  text (default) or json

Exit codes: 0 the reload was applied (or sent, when /health cannot tell); 1 it was refused or
the gateway could not be signalled; 2 usage or configuration error.
";

const IMPORT_HELP: &str = "\
mcp-gateway import: move a client's MCP servers behind the gateway.

Usage: mcp-gateway import FILE [--write] [--config PATH] [--url URL] [--log-format text|json]

Reads FILE, a client's MCP config: Claude Desktop's claude_desktop_config.json, Claude Code's
.mcp.json, Cursor's mcp.json, Cline's cline_mcp_settings.json, Roo's mcp_settings.json or VS
Code's .vscode/mcp.json (comments and trailing commas allowed). Checks its servers as the gateway
would load them and prints them for the gateway's config (values as written: ${VAR}s are not
expanded), then the one entry that client needs instead to reach the gateway.

Options:
  -w, --write         merge the servers into the gateway's config (--config, else the usual
                      lookup; created if there is none): servers of a name it already has are
                      left alone; the result is validated before it replaces the file. A running
                      gateway with gateway.watchConfig reloads it by itself
  -c, --config PATH   the gateway's config (where to merge; its address and token go into the
                      client's entry)
      --url URL       the gateway's MCP endpoint for the client's entry (default from the
                      gateway's config, else http://127.0.0.1:4298/mcp)
      --log-format F  text (default) or json

Exit codes: 0 done; 1 FILE cannot be read or its servers cannot be loaded, or the merge failed;
2 usage error.
";

const DIFF_HELP: &str = "\
mcp-gateway diff: how pinned tool definitions differ from what the servers list now.

Usage: mcp-gateway diff [SERVER] [--config PATH] [--log-format text|json]

The gateway records each tool's definition (name, title, description, input and output schema,
annotations) the first time it sees it, under gateway.stateDir/pins. For every server with pin on
(or only SERVER), prints each tool whose current definition (from the listing the gateway saved
last) differs from its pin, field by field (- pinned, + now), tools not pinned yet, and pinned
tools no longer listed.

Exit codes: 0 every definition is the pinned one; 1 some differ (or an error); 2 usage or
configuration error.
";

const LOGIN_HELP: &str = "\
mcp-gateway login: log in to a remote MCP server that wants OAuth tokens.

Usage: mcp-gateway login SERVER [--config PATH] [--no-browser] [--timeout SECONDS]

For a remote server whose config has \"auth\": {\"type\": \"oauth\"}. Asks the server which
authorization server it uses (its 401 challenge and protected-resource metadata), registers the
gateway there if the config names no client (dynamic client registration, or the
clientMetadataUrl document), prints the authorization URL (and opens it in a browser where one
exists, unless --no-browser) and waits up to --timeout seconds (default 300) for the redirect on
127.0.0.1 (the port is auth.redirectPort, else any free one). The tokens are saved in the config's
state directory (oauth/SERVER.json, mode 0600); a running gateway using that state directory
starts using them within a second, and refreshes them from then on.

Exit codes: 0 logged in; 1 the login failed (the reason is printed); 2 usage or configuration
error.
";

const LOGOUT_HELP: &str = "\
mcp-gateway logout: forget a remote server's OAuth tokens.

Usage: mcp-gateway logout SERVER [--config PATH]

Deletes SERVER's saved tokens (its client registration is kept for the next login). A running
gateway stops sending them within a second; the server then shows as \"needs login\".
";

const APPROVE_HELP: &str = "\
mcp-gateway approve: accept the current definitions of a server's tools.

Usage: mcp-gateway approve SERVER [TOOL...] [--config PATH] [--log-format text|json]

Records the definitions SERVER lists now (all its tools, or only the TOOLs named) as its pins.
With pin: hold, the tools withheld because they changed (or, with pinNew, are new) are listed to
clients again: a running gateway notices within a second, without a restart, and tells its
sessions (notifications/tools/list_changed).

Exit codes: 0 approved (or nothing to approve); 1 an error; 2 usage or configuration error.
";

/// What `mcp-gateway COMMAND --help` prints.
fn help_for(command: &str) -> &'static str {
    match command {
        "check" => CHECK_HELP,
        "init" => INIT_HELP,
        "bridge" => BRIDGE_HELP,
        "status" => STATUS_HELP,
        "reload" => RELOAD_HELP,
        "import" => IMPORT_HELP,
        "diff" => DIFF_HELP,
        "approve" => APPROVE_HELP,
        "login" => LOGIN_HELP,
        "logout" => LOGOUT_HELP,
        _ => SERVE_HELP,
    }
}

/// Takes `--log-format F` / `--log-format=F` out of `args`; else `$MCP_GATEWAY_LOG_FORMAT`.
fn take_log_format(args: &mut Vec<String>) -> Result<logging::LogFormat, String> {
    let mut chosen = std::env::var("MCP_GATEWAY_LOG_FORMAT")
        .ok()
        .filter(|v| !v.is_empty());
    let mut i = 0;
    while i < args.len() {
        if let Some(value) = args[i].strip_prefix("--log-format=") {
            chosen = Some(value.to_string());
            args.remove(i);
        } else if args[i] == "--log-format" {
            args.remove(i);
            if i >= args.len() {
                return Err("--log-format needs a value (text or json)".into());
            }
            chosen = Some(args.remove(i));
        } else {
            i += 1;
        }
    }
    chosen.map_or(Ok(logging::LogFormat::Text), |raw| {
        logging::LogFormat::parse(&raw)
    })
}

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let invoked_as = argv.next().and_then(|arg0| {
        let name = Path::new(&arg0).file_name()?;
        Some(name.to_string_lossy().into_owned())
    });
    let mut args: Vec<String> = argv.collect();
    if let [mode, instance] = &args[..] {
        if mode == mcp_gateway::downstream::process::GUARD_ARG {
            mcp_gateway::downstream::process::run_guard(instance);
        }
    }
    if invoked_as.as_deref() == Some("mcp-gateway-bridge") {
        args.insert(0, "bridge".into());
    }
    let format = match take_log_format(&mut args) {
        Ok(format) => format,
        Err(message) => {
            eprintln!("mcp-gateway: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The bridge runs inside a client's process tree: quiet unless asked.
    let level = match args.first().map(String::as_str) {
        Some("bridge") => "warn",
        _ => "info",
    };
    logging::init(format, level);
    match run(args) {
        Ok(code) => code,
        Err(Fail::Usage(message)) => {
            eprintln!("mcp-gateway: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Config(message)) => {
            eprintln!("mcp-gateway: {message}");
            ExitCode::from(2)
        }
        Err(Fail::Runtime(message)) => {
            log::error!("{message}");
            ExitCode::from(1)
        }
    }
}

enum Fail {
    Usage(String),
    Config(String),
    Runtime(String),
}

/// Options shared by `serve` and `check`.
#[derive(Default)]
struct Options {
    config: Option<PathBuf>,
    host: Option<String>,
    port: Option<u16>,
    force: bool,
    write: bool,
    url: Option<String>,
    pid: Option<u32>,
    no_browser: bool,
    timeout: Option<std::time::Duration>,
    positional: Vec<String>,
}

fn parse_options(args: &[String], allowed: &[&str]) -> Result<Options, Fail> {
    let mut options = Options::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        if flag.starts_with('-') && flag != "-" && !allowed.contains(&flag) {
            return Err(Fail::Usage(format!("unknown option {flag}")));
        }
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .ok_or_else(|| Fail::Usage(format!("{name} needs a value")))
        };
        match flag {
            "--config" | "-c" => options.config = Some(PathBuf::from(value("--config")?)),
            "--host" => options.host = Some(value("--host")?),
            "--port" | "-p" => {
                let raw = value("--port")?;
                options.port = Some(raw.parse().map_err(|_| {
                    Fail::Usage(format!(
                        "--port takes a number from 0 to 65535, not {raw:?}"
                    ))
                })?);
            }
            "--force" | "-f" => options.force = true,
            "--write" | "-w" => options.write = true,
            "--no-browser" => options.no_browser = true,
            "--timeout" => {
                let raw = value("--timeout")?;
                let seconds: u64 = raw.parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                    Fail::Usage(format!("--timeout takes seconds (1 or more), not {raw:?}"))
                })?;
                options.timeout = Some(std::time::Duration::from_secs(seconds));
            }
            "--url" => options.url = Some(value("--url")?),
            "--pid" => {
                let raw = value("--pid")?;
                options.pid = Some(raw.parse().ok().filter(|&p| p > 0).ok_or_else(|| {
                    Fail::Usage(format!("--pid takes a process id, not {raw:?}"))
                })?);
            }
            _ => options.positional.push(arg.clone()),
        }
    }
    Ok(options)
}

fn run(args: Vec<String>) -> Result<ExitCode, Fail> {
    let (command, rest) = match args.first().map(String::as_str) {
        Some("serve") => ("serve", &args[1..]),
        Some("check") => ("check", &args[1..]),
        Some("init") => ("init", &args[1..]),
        Some("bridge") => ("bridge", &args[1..]),
        Some("status") => ("status", &args[1..]),
        Some("reload") => ("reload", &args[1..]),
        Some("import") => ("import", &args[1..]),
        Some("diff") => ("diff", &args[1..]),
        Some("approve") => ("approve", &args[1..]),
        Some("login") => ("login", &args[1..]),
        Some("logout") => ("logout", &args[1..]),
        Some("help" | "--help" | "-h") => {
            match args.get(1).map(String::as_str) {
                Some(
                    command @ ("serve" | "check" | "init" | "bridge" | "status" | "reload"
                    | "import" | "diff" | "approve" | "login" | "logout"),
                ) => {
                    print!("{}", help_for(command))
                }
                Some(other) => {
                    return Err(Fail::Usage(format!("no help on {other}: not a command")))
                }
                None => print!("{USAGE}"),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some("--version" | "-V" | "version") => {
            println!("mcp-gateway {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) if !other.starts_with('-') => {
            return Err(Fail::Usage(format!("unknown command {other}")))
        }
        _ => ("serve", &args[..]),
    };
    if rest.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{}", help_for(command));
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        "bridge" => {
            let env = |key: &str| std::env::var(key).ok();
            let options = bridge::Options::parse(rest, &env).map_err(Fail::Usage)?;
            bridge::run(options).map_err(Fail::Runtime)?;
            Ok(ExitCode::SUCCESS)
        }
        "init" => {
            let options = parse_options(rest, &["--force", "-f"])?;
            init(&options)
        }
        "status" => {
            let env = |key: &str| std::env::var(key).ok();
            let options = status::Options::parse(rest, &env).map_err(Fail::Usage)?;
            print!("{}", status::run(&options).map_err(Fail::Runtime)?);
            Ok(ExitCode::SUCCESS)
        }
        "diff" => {
            let options = parse_options(rest, &["--config", "-c"])?;
            if let [_, extra, ..] = options.positional.as_slice() {
                return Err(Fail::Usage(format!("unexpected argument {extra}")));
            }
            let config = load(&options)?;
            let only = options.positional.first().map(String::as_str);
            let diff = mcp_gateway::pins::diff(&config, only).map_err(Fail::Runtime)?;
            print!("{}", diff.text);
            Ok(if diff.differs {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        "approve" => {
            let options = parse_options(rest, &["--config", "-c"])?;
            let Some((server, tools)) = options.positional.split_first() else {
                return Err(Fail::Usage("approve needs a SERVER".into()));
            };
            let config = load(&options)?;
            let done = mcp_gateway::pins::approve(&config, server, tools).map_err(Fail::Runtime)?;
            print!("{done}");
            Ok(ExitCode::SUCCESS)
        }
        "login" => {
            let options = parse_options(rest, &["--config", "-c", "--no-browser", "--timeout"])?;
            let [server] = options.positional.as_slice() else {
                return Err(Fail::Usage("login needs one SERVER".into()));
            };
            let config = load(&options)?;
            let login = mcp_gateway::oauth::login::Options {
                browser: !options.no_browser,
                timeout: options
                    .timeout
                    .unwrap_or(std::time::Duration::from_secs(300)),
            };
            let done =
                mcp_gateway::oauth::login::login(&config, server, &login, &mut std::io::stdout())
                    .map_err(Fail::Runtime)?;
            print!("{done}");
            Ok(ExitCode::SUCCESS)
        }
        "logout" => {
            let options = parse_options(rest, &["--config", "-c"])?;
            let [server] = options.positional.as_slice() else {
                return Err(Fail::Usage("logout needs one SERVER".into()));
            };
            let config = load(&options)?;
            let done = mcp_gateway::oauth::login::logout(&config, server).map_err(Fail::Runtime)?;
            print!("{done}");
            Ok(ExitCode::SUCCESS)
        }
        "check" => {
            let options = parse_options(rest, &["--config", "-c"])?;
            no_positional(&options)?;
            let config = load(&options)?;
            let all_up = gateway::check(config).map_err(Fail::Runtime)?;
            Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        "import" => {
            let options = parse_options(rest, &["--config", "-c", "--write", "-w", "--url"])?;
            import_command(&options)
        }
        "reload" => {
            let options = parse_options(rest, &["--config", "-c", "--pid"])?;
            no_positional(&options)?;
            reload_command(&options)
        }
        _ => {
            let options = parse_options(rest, &["--config", "-c", "--host", "--port", "-p"])?;
            no_positional(&options)?;
            let mut config = load(&options)?;
            let overrides = reload::Overrides {
                host: options.host,
                port: options.port,
            };
            overrides.apply(&mut config);
            // A configuration mistake (exit 2), told before anything starts.
            let address = gateway::listen_address(&config.gateway).map_err(Fail::Config)?;
            gateway::exposure(&config.gateway, address.ip()).map_err(Fail::Config)?;
            gateway::serve(config, overrides).map_err(Fail::Runtime)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn no_positional(options: &Options) -> Result<(), Fail> {
    match options.positional.first() {
        Some(extra) => Err(Fail::Usage(format!("unexpected argument {extra}"))),
        None => Ok(()),
    }
}

fn load(options: &Options) -> Result<config::Config, Fail> {
    let env = |key: &str| std::env::var(key).ok();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let path = config::locate(options.config.as_deref(), &env, &cwd)
        .map_err(|e| Fail::Config(e.to_string()))?;
    config::load(&path).map_err(|e| Fail::Config(e.to_string()))
}

/// `mcp-gateway import FILE`.
fn import_command(options: &Options) -> Result<ExitCode, Fail> {
    let file = match options.positional.as_slice() {
        [file] => PathBuf::from(file),
        [] => {
            return Err(Fail::Usage(
                "import needs the FILE of a client's MCP config".into(),
            ))
        }
        [_, extra, ..] => return Err(Fail::Usage(format!("unexpected argument {extra}"))),
    };
    let env = |key: &str| std::env::var(key).ok();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    // The gateway's own config: where to merge, and its address and token for the client.
    let target = match config::locate(options.config.as_deref(), &env, &cwd) {
        Ok(path) => Some(path),
        Err(_) if options.config.is_some() => options.config.as_ref().map(|p| cwd.join(p)),
        Err(_) => config::default_user_path(&env),
    };
    let gateway = target
        .as_deref()
        .and_then(|path| config::load(path).ok())
        .map(|c| c.gateway);
    let url = options.url.clone().unwrap_or_else(|| match &gateway {
        Some(g) => {
            let host = match g.host.as_str() {
                "0.0.0.0" | "::" => "127.0.0.1",
                host if host.contains(':') => return format!("http://[{host}]:{}/mcp", g.port),
                host => host,
            };
            format!("http://{host}:{}/mcp", g.port)
        }
        None => "http://127.0.0.1:4298/mcp".into(),
    });
    let token = gateway.as_ref().is_some_and(|g| g.auth_token.is_some());
    let write_to = match (options.write, target.as_deref()) {
        (true, Some(path)) => Some(path),
        (true, None) => {
            return Err(Fail::Usage(
                "cannot tell where the gateway's config is (no HOME): give --config PATH".into(),
            ))
        }
        (false, _) => None,
    };
    print!(
        "{}",
        import::run(&file, write_to, &url, token).map_err(Fail::Runtime)?
    );
    Ok(ExitCode::SUCCESS)
}

/// `mcp-gateway reload`: SIGHUP to the running gateway, then its verdict from `/health`.
fn reload_command(options: &Options) -> Result<ExitCode, Fail> {
    // The config names the state dir (where the pid file is), the address and the token. One
    // that does not load is still worth sending (the gateway reports why it refuses it), to the
    // gateway of the default state dir or --pid.
    let loaded = load(options);
    let config = loaded.as_ref().ok();
    let state_dir = match config {
        Some(config) => config.gateway.state_dir.clone(),
        None => config::default_state_dir(),
    };
    let pid = match reload::find_gateway(options.pid, state_dir.as_deref()) {
        Ok(pid) => pid,
        Err(e) => return Err(loaded.err().unwrap_or(Fail::Runtime(e))),
    };
    // Where its /health is: the pid file says where it listens (the file's port may be 0).
    let url = reload::listening_url(state_dir.as_deref(), pid).or_else(|| {
        let gateway = &config?.gateway;
        let host = match gateway.host.as_str() {
            "0.0.0.0" => "127.0.0.1",
            "::" => "::1",
            host => host,
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Some(format!("http://{host}:{}", gateway.port))
    });
    let token = config
        .and_then(|c| c.gateway.auth_token.clone())
        .or_else(|| {
            std::env::var("MCP_GATEWAY_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        });
    let health = url.map(|url| status::Options { url, token });
    let count = |h: &serde_json::Value| {
        h["reloads"]["applied"].as_u64().unwrap_or(0)
            + h["reloads"]["refused"].as_u64().unwrap_or(0)
    };
    let before = health
        .as_ref()
        .and_then(|o| status::fetch_health(o).ok())
        .filter(|h| h.get("reloads").is_some());
    reload::signal(pid).map_err(Fail::Runtime)?;
    let (Some(options), Some(before)) = (health, before) else {
        println!("sent SIGHUP to mcp-gateway (pid {pid}); its log says what changed");
        if let Err(Fail::Config(problems)) = loaded {
            println!("it will refuse the config, which does not validate:\n{problems}");
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < give_up {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Ok(now) = status::fetch_health(&options) else {
            continue;
        };
        if count(&now) > count(&before) {
            let summary = now["reloads"]["last"].as_str().unwrap_or("reloaded");
            println!("{summary}");
            return Ok(if now["reloads"]["lastApplied"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    println!("sent SIGHUP to mcp-gateway (pid {pid}); it has not reported a reload within 15 s (see its log)");
    Ok(ExitCode::SUCCESS)
}

fn init(options: &Options) -> Result<ExitCode, Fail> {
    let env = |key: &str| std::env::var(key).ok();
    let path = match options.positional.as_slice() {
        [] => config::default_user_path(&env).ok_or_else(|| {
            Fail::Usage(
                "cannot tell where your config directory is (HOME is not set); give a PATH".into(),
            )
        })?,
        [path] => PathBuf::from(path),
        [_, extra, ..] => return Err(Fail::Usage(format!("unexpected argument {extra}"))),
    };
    config::write_example(Path::new(&path), options.force).map_err(Fail::Config)?;
    println!("wrote an example config to {}", path.display());
    println!(
        "check it with: mcp-gateway check --config {}",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
