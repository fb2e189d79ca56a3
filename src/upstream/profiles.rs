//! Which profile a request is for, and the views the router answers it from.
//!
//! The profile lives in the URL, so it needs no session: `/mcp/<profile>` (Streamable HTTP),
//! `/sse/<profile>` (legacy SSE, whose endpoint event names `/messages/<profile>?sessionId=`), and
//! `?profile=<name>` on the REST endpoints (`/tools`, `/tools/call`). The plain endpoints are the
//! profile `default`. An unknown profile is a 404 that lists the profiles.
//!
//! A session belongs to the profile it was opened on: every later request must come through that
//! profile's URL. One that comes through another (a session opened on `/mcp/a` used on `/mcp/b`)
//! is refused with 404 and a message naming both, as a session that does not exist at that URL —
//! so a client that mixed its URLs re-initializes where it now is, and no session ever sees
//! another profile's tools.

use super::{Response, Router};
use crate::http::Request;
use crate::job::Slot;
use crate::registry::Snapshot;
use crate::rpc::codes;
use serde_json::{json, Value};
use std::sync::Arc;

/// The profile of the plain endpoints.
pub const DEFAULT_PROFILE: &str = "default";

/// The endpoint a path names (`/mcp/x` → `/mcp`) and the profile it names, if any.
pub fn split_path(path: &str) -> (&str, Option<&str>) {
    for endpoint in ["/mcp", "/sse", "/messages"] {
        if let Some(profile) = path
            .strip_prefix(endpoint)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            return (endpoint, Some(profile));
        }
    }
    (path, None)
}

/// The profile a request is for: from its path, else `?profile=`, else `default`.
pub fn requested(req: &Request) -> String {
    match split_path(&req.path) {
        (_, Some(profile)) => profile.to_string(),
        (_, None) => req
            .query_param("profile")
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string()),
    }
}

/// The path of an endpoint for a profile (`/mcp` for `default`, `/mcp/<profile>` otherwise).
pub fn path_for(endpoint: &str, profile: &str) -> String {
    if profile == DEFAULT_PROFILE {
        endpoint.to_string()
    } else {
        format!("{endpoint}/{profile}")
    }
}

impl Router {
    /// 404 when the request names a profile the config does not define.
    pub(super) fn check_profile(&self, req: &Request, rest: bool) -> Option<Response> {
        let profile = requested(req);
        if self.registry.view(&profile).is_some() {
            return None;
        }
        let names = self.registry.profile_names();
        let message = format!(
            "unknown profile \"{profile}\"; the profiles are: {}",
            names.join(", ")
        );
        let error = json!({"code": codes::INVALID_REQUEST, "message": message, "data": {"profiles": names}});
        let body = if rest {
            json!({ "error": error })
        } else {
            json!({"jsonrpc": "2.0", "id": null, "error": error})
        };
        Some(Response::json(404, body.to_string().into_bytes()))
    }

    /// The view of a profile; an empty one if it no longer exists (never the full catalog).
    pub(super) fn view(&self, profile: &str) -> Arc<Snapshot> {
        self.registry
            .view(profile)
            .cloned()
            .unwrap_or_else(|| Arc::new(Snapshot::default()))
    }

    /// The view a session sees: its profile's.
    pub(super) fn session_view(&self, session: Slot) -> Arc<Snapshot> {
        let profile = self
            .sessions
            .get(session)
            .map_or(DEFAULT_PROFILE, |s| s.profile.as_str());
        self.view(profile)
    }

    /// The refusal for a session used through another profile's URL.
    pub(super) fn profile_mismatch(&self, session: Slot, req: &Request) -> Option<Response> {
        let own = &self.sessions.get(session)?.profile;
        let here = requested(req);
        if *own == here {
            return None;
        }
        let (endpoint, _) = split_path(&req.path);
        Some(Response::rpc_error(
            404,
            codes::INVALID_REQUEST,
            &format!(
                "this session belongs to profile \"{own}\" ({}); it cannot be used through profile \"{here}\" ({}): initialize again here, or keep to the URL it was opened on",
                path_for(endpoint, own),
                path_for(endpoint, &here)
            ),
        ))
    }

    /// Under `gateway.oauth`, a session is its opener's: a request whose token is another's gets
    /// what a request for a session that does not exist gets (nothing tells it one does).
    pub(super) fn owner_mismatch(&self, session: Slot) -> Option<Response> {
        let owner = &self.sessions.get(session)?.owner;
        if *owner == self.principal {
            return None;
        }
        log::info!("a request with another subject's token named a session; refused as unknown");
        Some(Response::rpc_error(
            404,
            codes::INVALID_REQUEST,
            "unknown or expired session: initialize again to get a new one",
        ))
    }

    /// `/health`'s `profiles`: per profile its tools and the estimated size of their definitions.
    pub(super) fn profiles_health(&self) -> Value {
        Value::Array(self.registry.views.iter().map(|v| summary(v)).collect())
    }
}

/// One profile's figures, as `/health` and `mcp-gateway check` show them. Tokens are estimated
/// as definition bytes / 4.
pub fn summary(view: &Snapshot) -> Value {
    let exposure = &view.exposure;
    let searching = view.searching(false);
    json!({
        "name": exposure.profile,
        "tools": view.tools.items.len(),
        "toolExposure": exposure.mode.as_str(),
        "listed": if searching { "search" } else { "all" },
        "definitionBytes": exposure.catalog_bytes,
        "estimatedTokens": exposure.catalog_bytes / 4,
        "listedTokens": if searching { exposure.search_bytes } else { exposure.catalog_bytes } / 4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_endpoints_and_profiles() {
        assert_eq!(split_path("/mcp"), ("/mcp", None));
        assert_eq!(split_path("/mcp/small"), ("/mcp", Some("small")));
        assert_eq!(split_path("/sse/a-b"), ("/sse", Some("a-b")));
        assert_eq!(split_path("/messages/x"), ("/messages", Some("x")));
        assert_eq!(split_path("/mcp/"), ("/mcp", Some("")));
        assert_eq!(split_path("/mcpx"), ("/mcpx", None));
        assert_eq!(split_path("/tools/call"), ("/tools/call", None));
        assert_eq!(path_for("/sse", "default"), "/sse");
        assert_eq!(path_for("/messages", "a"), "/messages/a");
    }
}
