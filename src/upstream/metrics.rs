//! `GET /metrics`, and where the router counts and audits calls.
//!
//! A forwarded call is metered twice on the reactor: `meter` when its job is dispatched (the tool
//! label, and the audit note with the caller's identity) and `finish` when its final answer
//! arrives, carrying how it ended (`job::Finished`, classified by the carrier). A call the router
//! refuses itself (an unknown tool, `maxInFlightPerSession`) is counted by `refused`. These three
//! are the only places a call's end is recorded: a label added to calls (a profile, an era) is
//! added to `job::Meter` in `meter` and read in `finish`.
//!
//! Rendering reads what the owners publish: the pools' lock-free counters plus their handles' load
//! under the pool's short lock (as `/health` does), the session table, the reload and audit
//! counters. For a few servers and a few hundred series that is microseconds, so it runs here.

use super::session::Transport;
use super::{Response, Router};
use crate::audit::{self, AuditLog};
use crate::job::{Finished, Job, Slot};
use crate::metrics::{Ended, ErrorType, Exposition, Method, ToolLabel};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The era label of sessions that began with `initialize` (protocol 2024-11-05 … 2025-11-25).
pub const ERA_2025: &str = "2025-11-25";

impl Router {
    /// Writes audit lines from now on.
    pub fn set_audit(&mut self, audit: AuditLog) {
        self.audit = Some(audit);
    }

    /// Labels a job about to be dispatched, and starts its audit line.
    pub(super) fn meter(&mut self, job: &mut Job) {
        let target = job.meter.target.take();
        if job.method == "tools/call" {
            job.meter.tool = match &target {
                Some(name) => self.metrics.tool_label(name),
                None => ToolLabel::OTHER,
            };
        }
        if let Some(keep_arguments) = self.audit.as_ref().map(|a| a.arguments) {
            let server = self.servers.configs.get(job.server).map(|s| s.name.clone());
            let client = self.audit_client(job.session);
            let mut call = audit::Call::new(client, server, job.method, target);
            call.keep_arguments = keep_arguments;
            job.meter.audit = Some(Arc::new(call));
        }
    }

    /// Who is calling, for the audit line.
    fn audit_client(&self, session: Option<Slot>) -> audit::Client {
        // Without a session: `POST /tools/call` (the one caller that has none).
        let Some(session) = session.and_then(|s| self.sessions.get(s)) else {
            return audit::Client {
                transport: "rest",
                ..Default::default()
            };
        };
        audit::Client {
            transport: session.transport.label(),
            name: session.client_info.0.clone(),
            version: session.client_info.1.clone(),
            session: Some(session.id.chars().take(8).collect()),
        }
    }

    /// A job's final answer arrived: count it, and queue its audit line.
    pub(super) fn finish(&mut self, finished: Finished) {
        let server = self
            .servers
            .configs
            .get(finished.ended.server)
            .map_or("", |s| s.name.as_str());
        self.metrics.record(&finished.ended, server);
        if let (Some(audit), Some(call)) = (&self.audit, finished.audit) {
            audit.log(call, finished.ended);
        }
    }

    /// A call the router answered with an error itself, before any server saw it.
    pub(super) fn refused(
        &mut self,
        method: &'static str,
        target: Option<String>,
        session: Option<Slot>,
        code: i64,
        error: ErrorType,
    ) {
        let ended = Ended {
            method: Method::of(method),
            // Never interned: only names the registry routed become labels.
            tool: if method == "tools/call" {
                ToolLabel::OTHER
            } else {
                ToolLabel::NONE
            },
            server: usize::MAX,
            elapsed: Duration::ZERO,
            error,
            code: Some(code),
            answer_bytes: 0,
        };
        self.metrics.record(&ended, "");
        if let Some(audit) = &self.audit {
            let client = self.audit_client(session);
            let call = audit::Call::new(client, None, method, target);
            audit.log(Arc::new(call), ended);
        }
    }

    /// `GET /metrics`.
    pub(super) fn metrics(&self) -> Response {
        let mut out = Exposition::default();
        self.metrics.write(&mut out);
        self.write_servers(&mut out);
        self.write_gateway(&mut out);
        Response {
            status: 200,
            content_type: crate::metrics::CONTENT_TYPE,
            headers: Vec::new(),
            body: out.finish().into_bytes(),
            close: false,
        }
    }

    fn write_servers(&self, out: &mut Exposition) {
        // The servers in force; a reload's new slot for a changed server starts its counters anew
        // (a counter reset, as Prometheus expects of a restart).
        let stats: Vec<_> = self.servers.in_force().map(|(_, _, p)| p.stats()).collect();
        let names: Vec<&str> = self
            .servers
            .in_force()
            .map(|(_, s, _)| s.name.as_str())
            .collect();
        let each = |out: &mut Exposition,
                    name: &str,
                    kind: &str,
                    help: &str,
                    value: &dyn Fn(usize) -> u64| {
            out.family(name, kind, help);
            for (i, server) in names.iter().enumerate() {
                out.sample(name, &[("server", server)], value(i) as f64);
            }
        };
        each(
            out,
            "mcp_gateway_calls_total",
            "counter",
            "Calls that got a handle of the server.",
            &|i| stats[i].calls,
        );
        each(
            out,
            "mcp_gateway_spawns_total",
            "counter",
            "Processes started (local servers) or sessions opened (remote servers).",
            &|i| stats[i].spawns,
        );
        each(
            out,
            "mcp_gateway_restarts_total",
            "counter",
            "Failed starts plus handles lost unexpectedly.",
            &|i| stats[i].restarts,
        );
        out.family(
            "mcp_gateway_recycles_total",
            "counter",
            "Handles retired on purpose, by reason (maxLifetime, maxCalls, maxRssBytes).",
        );
        for (i, server) in names.iter().enumerate() {
            for reason in crate::pool::Recycled::ALL {
                out.sample(
                    "mcp_gateway_recycles_total",
                    &[("server", server), ("reason", reason.key())],
                    stats[i].recycles[reason as usize] as f64,
                );
            }
        }
        out.family(
            "mcp_gateway_handles",
            "gauge",
            "The server's handles (processes or remote sessions) by state.",
        );
        for (i, server) in names.iter().enumerate() {
            let s = &stats[i];
            for (state, count) in [("busy", s.busy), ("idle", s.idle), ("starting", s.starting)] {
                out.sample(
                    "mcp_gateway_handles",
                    &[("server", server), ("state", state)],
                    count as f64,
                );
            }
        }
        each(
            out,
            "mcp_gateway_server_calls_in_flight",
            "gauge",
            "Calls running on the server's handles.",
            &|i| stats[i].in_flight as u64,
        );
        each(
            out,
            "mcp_gateway_jobs_waiting",
            "gauge",
            "Calls parked in the server's queue, waiting for room on a handle.",
            &|i| stats[i].waiting as u64,
        );
        each(
            out,
            "mcp_gateway_server_processes",
            "gauge",
            "Processes of a local server.",
            &|i| stats[i].handles.iter().filter(|h| h.pid.is_some()).count() as u64,
        );
        each(
            out,
            "mcp_gateway_server_rss_bytes",
            "gauge",
            "Resident memory of the server's processes together, as last measured (once a second).",
            &|i| stats[i].handles.iter().filter_map(|h| h.rss_bytes).sum(),
        );
        out.family(
            "mcp_gateway_server_up",
            "gauge",
            "1 when the server is up (callable), else 0; its status in the label.",
        );
        for (i, server) in names.iter().enumerate() {
            let status = self.server_status(i, stats[i].status);
            let up = u8::from(status == crate::pool::Status::Up);
            out.sample(
                "mcp_gateway_server_up",
                &[("server", server), ("status", status.as_str())],
                f64::from(up),
            );
        }
    }

    fn write_gateway(&self, out: &mut Exposition) {
        out.family(
            "mcp_gateway_sessions",
            "gauge",
            "Open MCP sessions by transport and protocol era.",
        );
        let (streamable, legacy, listen) = self.sessions_by_transport();
        for (transport, era, count) in [
            (Transport::Streamable, ERA_2025, streamable),
            (Transport::LegacySse, ERA_2025, legacy),
            // 2026-07-28 has no sessions: its held `subscriptions/listen` streams are counted.
            (
                Transport::Listen,
                crate::upstream::modern::MODERN_VERSIONS[0],
                listen,
            ),
        ] {
            out.sample(
                "mcp_gateway_sessions",
                &[("transport", transport.label()), ("era", era)],
                count as f64,
            );
        }
        out.family(
            "mcp_gateway_calls_in_flight",
            "gauge",
            "Calls dispatched and not yet answered (running or parked).",
        );
        out.sample("mcp_gateway_calls_in_flight", &[], self.in_flight as f64);
        let (applied, rejected) = crate::metrics::reloads();
        out.family(
            "mcp_gateway_reloads_total",
            "counter",
            "Configuration reloads, applied or rejected (the old configuration kept).",
        );
        out.sample(
            "mcp_gateway_reloads_total",
            &[("result", "applied")],
            applied as f64,
        );
        out.sample(
            "mcp_gateway_reloads_total",
            &[("result", "rejected")],
            rejected as f64,
        );
        if let Some(audit) = &self.audit {
            let c = &audit.counters;
            for (name, help, value) in [
                (
                    "mcp_gateway_audit_lines_total",
                    "Audit log lines written.",
                    &c.written,
                ),
                (
                    "mcp_gateway_audit_dropped_total",
                    "Audit log lines dropped because the writer could not keep up.",
                    &c.dropped,
                ),
                (
                    "mcp_gateway_audit_failed_total",
                    "Audit log lines lost to write errors.",
                    &c.failed,
                ),
            ] {
                out.family(name, "counter", help);
                out.sample(name, &[], value.load(Ordering::Relaxed) as f64);
            }
        }
        out.family(
            "mcp_gateway_uptime_seconds",
            "gauge",
            "Seconds since the gateway started.",
        );
        out.sample(
            "mcp_gateway_uptime_seconds",
            &[],
            self.started.elapsed().as_secs() as f64,
        );
        out.family(
            "mcp_gateway_build_info",
            "gauge",
            "Always 1; the gateway's version in the label.",
        );
        out.sample(
            "mcp_gateway_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    }
}
