//! `GET /health`: the real state of every server, read from the pools' published counters.
//!
//! `status` is `ok` when every enabled server is up, `degraded` otherwise, `shutting_down` during a
//! graceful stop (then with HTTP 503, so a load balancer stops sending traffic).
//!
//! When `gateway.authToken` is set, a request without the token gets only `{"status": ...}`: the
//! rest (server names, counters, errors) is for those who hold it. `lastError` is always passed
//! through `redact`: it may quote a server's own stderr, which may quote its secrets.

use super::{Response, Router};
use crate::config::ServerKind;
use serde_json::{json, Value};

impl Router {
    pub(super) fn health(&self, full: bool) -> Response {
        let mut all_up = true;
        let servers: Vec<Value> = self
            .servers
            .iter()
            .zip(self.pools.iter())
            .enumerate()
            .map(|(index, (config, pool))| {
                let mut stats = pool.stats();
                // "up" means callable: the pool has a handle AND the router already routes the
                // server's tools. The listing reaches the reactor through its mailbox, after the
                // pool's counters have flipped, so until then the server is still "starting".
                let listed = matches!(self.registry.server_capabilities.get(index), Some(Some(_)));
                if stats.status == crate::pool::Status::Up && !listed {
                    stats.status = crate::pool::Status::Starting;
                }
                if config.enabled && stats.status != crate::pool::Status::Up {
                    all_up = false;
                }
                let settings = pool.settings();
                json!({
                    "name": config.name,
                    "type": match config.kind { ServerKind::Local(_) => "local", ServerKind::Remote(_) => "remote" },
                    "enabled": config.enabled,
                    "status": stats.status.as_str(),
                    "tools": self.registry.tool_counts.get(index).copied().unwrap_or(0),
                    "pool": {
                        "total": stats.total,
                        "busy": stats.busy,
                        "idle": stats.idle,
                        "starting": stats.starting,
                        "waiting": stats.waiting,
                        "inFlight": stats.in_flight,
                        "min": settings.min,
                        "max": settings.max,
                        "maxConcurrency": settings.max_concurrency,
                        "handles": stats
                            .handles
                            .iter()
                            .map(|h| serde_json::json!({"serial": h.serial, "inFlight": h.in_flight,
                                "calls": h.calls, "pid": h.pid, "rssBytes": h.rss_bytes}))
                            .collect::<Vec<_>>(),
                    },
                    "spawns": stats.spawns,
                    "restarts": stats.restarts,
                    "calls": stats.calls,
                    "failedCalls": stats.failed,
                    "recycles": crate::pool::Recycled::ALL
                        .iter()
                        .map(|r| (r.key().to_string(), serde_json::Value::from(stats.recycles[*r as usize])))
                        .collect::<serde_json::Map<_, _>>(),
                    "lastError": stats.last_error.as_deref().map(super::redact::redact),
                    "nextRetryMs": stats.next_retry_ms,
                })
            })
            .collect();
        let status = if self.shutting_down {
            "shutting_down"
        } else if all_up {
            "ok"
        } else {
            "degraded"
        };
        let code = if self.shutting_down { 503 } else { 200 };
        if !full {
            return Response::json(code, json!({ "status": status }).to_string().into_bytes());
        }
        let count = |transport| {
            self.sessions
                .iter()
                .filter(|(_, s)| s.transport == transport)
                .count()
        };
        let legacy = count(super::session::Transport::LegacySse);
        let listen = count(super::session::Transport::Listen);
        let body = json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": self.started.elapsed().as_secs(),
            "sessions": self.sessions.len(),
            "sessionsByTransport": {
                "streamableHttp": self.sessions.len() - legacy - listen,
                "legacySse": legacy,
                "listen": listen,
            },
            "inFlight": self.in_flight,
            "tools": self.registry.tools.items.len(),
            "servers": servers,
            "collisions": self.registry.collisions.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "notes": self.settings.notes.iter().chain(&self.registry.notes).collect::<Vec<_>>(),
        });
        Response::json(code, body.to_string().into_bytes())
    }
}
