//! `GET /health`: the real state of every server, read from the pools' published counters.
//!
//! `status` is `ok` when every enabled server is up, `degraded` otherwise, `shutting_down` during a
//! graceful stop (then with HTTP 503, so a load balancer stops sending traffic).
//!
//! When `gateway.authToken` or `gateway.oauth` is set, a request without a token that passes gets
//! only `{"status": ...}`: the rest (server names, counters, errors, the OAuth guard's key set and
//! counters) is for those who hold one. `lastError` is always passed
//! through `redact`: it may quote a server's own stderr, which may quote its secrets.

use super::{Response, Router};
use crate::config::ServerKind;
use crate::pool::Status;
use serde_json::{json, Value};

impl Router {
    /// What `/health` and `/metrics` say of a server whose pool says `pooled`: "up" means
    /// callable, so the pool has a handle AND the router already routes the server's tools. The
    /// listing reaches the reactor through its mailbox, after the pool's counters have flipped,
    /// so until then the server is still "starting".
    pub(super) fn server_status(&self, index: usize, pooled: Status) -> Status {
        let listed = matches!(self.registry.server_capabilities.get(index), Some(Some(_)));
        if pooled == Status::Up && !listed {
            return Status::Starting;
        }
        pooled
    }

    /// Open sessions: (Streamable HTTP, legacy SSE).
    /// Open sessions: Streamable HTTP, legacy SSE, and held `subscriptions/listen` streams
    /// (2026-07-28).
    pub(super) fn sessions_by_transport(&self) -> (usize, usize, usize) {
        let count = |transport| {
            self.sessions
                .iter()
                .filter(|(_, s)| s.transport == transport)
                .count()
        };
        let legacy = count(super::session::Transport::LegacySse);
        let listen = count(super::session::Transport::Listen);
        (self.sessions.len() - legacy - listen, legacy, listen)
    }

    pub(super) fn health(&mut self, full: bool) -> Response {
        let oauth = self
            .oauth
            .as_mut()
            .filter(|_| full)
            .map(|g| g.describe(std::time::Instant::now()));
        let mut all_up = true;
        let servers: Vec<Value> = self
            .servers
            .in_force()
            .map(|(index, config, pool)| {
                let mut stats = pool.stats();
                stats.status = self.server_status(index, stats.status);
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
        let (streamable, legacy, listen) = self.sessions_by_transport();
        let body = json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": self.started.elapsed().as_secs(),
            "sessions": self.sessions.len(),
            "sessionsByTransport": {
                "streamableHttp": streamable,
                "legacySse": legacy,
                "listen": listen,
            },
            "inFlight": self.in_flight,
            "tools": self.registry.tools.items.len(),
            "servers": servers,
            "profiles": self.profiles_health(),
            "changedTools": self.registry.changed_tools.iter().map(|c| json!({
                "server": self.servers.configs.get(c.server).map(|s| s.name.as_str()),
                "tool": c.tool,
                "change": if c.new { "new" } else { "changed" },
                "held": c.held,
            })).collect::<Vec<_>>(),
            "profileTokens": "estimated as the bytes of each profile's tools/list answer / 4",
            "collisions": self.registry.collisions.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "notes": self.settings.notes.iter().chain(&self.registry.notes).collect::<Vec<_>>(),
            "reloads": {
                "applied": self.reloads.applied,
                "refused": self.reloads.refused,
                "last": self.reloads.last.as_ref().map(|(summary, _)| summary),
                "lastApplied": self.reloads.last.as_ref().map(|(_, applied)| applied),
            },
            "audit": self.audit.as_ref().map(|audit| {
                let c = &audit.counters;
                let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
                json!({"written": load(&c.written), "dropped": load(&c.dropped), "failed": load(&c.failed)})
            }),
            "oauth": oauth,
        });
        Response::json(code, body.to_string().into_bytes())
    }
}
