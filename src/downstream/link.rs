//! A pooled handle of either kind: a stdio child process or a session with a remote server.
//!
//! The pool, the supervisor and the workers hold `Link`s; what differs between the kinds (how a
//! call travels, how a handle stops) is matched here or in the worker's two call paths.

use super::remote::link::RemoteLink;
use super::stdio::StdioChild;
use super::Requester;
use crate::pool::{Member, Pool};
use std::sync::Arc;

/// The pool of one server's handles.
pub type ServerPool = Pool<Link>;

#[derive(Clone)]
pub enum Link {
    Stdio(Arc<StdioChild>),
    Remote(Arc<RemoteLink>),
}

impl Link {
    /// Index of the server in the config.
    pub fn server(&self) -> usize {
        match self {
            Link::Stdio(child) => child.server,
            Link::Remote(remote) => remote.server,
        }
    }

    /// Why the handle's server needs an OAuth login first, when it does.
    pub fn needs_login(&self) -> Option<String> {
        match self {
            Link::Stdio(_) => None,
            Link::Remote(remote) => remote.needs_login(),
        }
    }

    /// The handle as a requester, for the handshake and the gateway's own requests.
    pub fn requester(&self) -> &dyn Requester {
        match self {
            Link::Stdio(child) => &**child,
            Link::Remote(remote) => &**remote,
        }
    }
}

impl Member for Link {
    fn is_alive(&self) -> bool {
        match self {
            Link::Stdio(child) => child.is_alive(),
            Link::Remote(remote) => remote.is_alive(),
        }
    }

    fn serial(&self) -> u64 {
        match self {
            Link::Stdio(child) => child.serial,
            Link::Remote(remote) => remote.serial,
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Link::Stdio(child) => Some(child.pid),
            Link::Remote(_) => None,
        }
    }

    fn rss_bytes(&self) -> Option<u64> {
        match self {
            Link::Stdio(child) => child.rss_bytes(),
            Link::Remote(_) => None,
        }
    }

    fn death_note(&self) -> Option<String> {
        match self {
            Link::Stdio(child) => child.death_note(),
            Link::Remote(remote) => (!remote.is_alive()).then(|| remote.death_note()),
        }
    }
}
