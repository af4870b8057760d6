//! What every handler and session shares: the API's identity, the route table and
//! integrations, the connection registry, the authorizer, the limits and the shutdown signal.
//! `start` (in lib.rs) builds it; the handlers (`ws`, `management`, `demo`) read it. It lives
//! in a module of its own so that the handlers need not import the wiring that mounts them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use authorizer::Authorizer;
use tokio::sync::watch;

use crate::call_log::CallLog;
use crate::config::{IdentitySource, Limits};
use crate::dev_idp::DevIdentityProvider;
use crate::integration::Integrations;
use crate::protocol::ApiInfo;
use crate::routes::RouteTable;
use crate::state::Registry;

/// Counts sessions from `$connect` until their `$disconnect` finished, so shutdown can wait
/// for the last `$disconnect` integrations.
#[derive(Debug, Default)]
pub struct Sessions(AtomicUsize);

impl Sessions {
    pub fn started(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn ended(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Shared by every handler and session.
pub struct AppState {
    pub api: ApiInfo,
    pub region: String,
    pub routes: RouteTable,
    pub integrations: Integrations,
    pub registry: Registry,
    pub sessions: Sessions,
    pub authorizer: Authorizer,
    pub identity_provider: Arc<DevIdentityProvider>,
    pub identity_sources: Vec<IdentitySource>,
    pub limits: Limits,
    /// Turns `true` when the emulator shuts down: sessions close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// Records the management API's calls for the IAM check, when asked to.
    pub call_log: Option<CallLog>,
}
