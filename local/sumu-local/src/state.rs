//! The connection registry: every WebSocket connection the emulator holds, shared by the
//! WebSocket sessions and the management API. A std `Mutex` guards the map; no `.await` is
//! ever held across it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// What the rest of the emulator can ask a connection's session to write to its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(String),
    Binary(Vec<u8>),
    /// Send a close frame with this code and end the session (`$disconnect` follows).
    Close {
        code: u16,
        reason: String,
    },
}

/// The client as API Gateway's `$context.identity` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub source_ip: String,
    pub user_agent: String,
}

/// What the authorizer answered on `$connect`; available to every later route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Principal {
    pub principal_id: String,
    /// The authorizer's context, values already turned into strings as API Gateway does.
    pub context: Map<String, Value>,
}

/// One connection. `Connecting` until the upgrade completed (management calls get 410 then).
#[derive(Debug)]
pub struct Connection {
    pub id: String,
    /// Epoch milliseconds.
    pub connected_at: i64,
    pub identity: Identity,
    pub principal: Principal,
    outbound: mpsc::UnboundedSender<Outbound>,
    open: AtomicBool,
    /// Epoch milliseconds of the last frame received from the client.
    last_active_at: AtomicI64,
}

impl Connection {
    pub fn new(
        id: String,
        connected_at: i64,
        identity: Identity,
        principal: Principal,
        outbound: mpsc::UnboundedSender<Outbound>,
    ) -> Connection {
        Connection {
            id,
            connected_at,
            identity,
            principal,
            outbound,
            open: AtomicBool::new(false),
            last_active_at: AtomicI64::new(connected_at),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn mark_open(&self) {
        self.open.store(true, Ordering::Release);
    }

    pub fn last_active_at(&self) -> i64 {
        self.last_active_at.load(Ordering::Relaxed)
    }

    pub fn touch(&self, now_ms: i64) {
        self.last_active_at.store(now_ms, Ordering::Relaxed);
    }

    /// Queues a frame for the client. False when the session already ended.
    pub fn send(&self, message: Outbound) -> bool {
        self.outbound.send(message).is_ok()
    }
}

/// Why the management API cannot reach a connection: both are a 410 on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    Unknown,
    StillConnecting,
}

/// Connections by id.
#[derive(Debug, Default)]
pub struct Registry {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is
        // a single insert/remove), so a poisoned lock is still usable.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn insert(&self, connection: Arc<Connection>) {
        self.lock().insert(connection.id.clone(), connection);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().remove(id)
    }

    /// The connection if it is open, as the management API sees it.
    pub fn open(&self, id: &str) -> Result<Arc<Connection>, Unreachable> {
        match self.lock().get(id) {
            None => Err(Unreachable::Unknown),
            Some(connection) if !connection.is_open() => Err(Unreachable::StillConnecting),
            Some(connection) => Ok(Arc::clone(connection)),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: &str) -> (Arc<Connection>, mpsc::UnboundedReceiver<Outbound>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let connection = Connection::new(
            id.into(),
            1_000,
            Identity::default(),
            Principal::default(),
            sender,
        );
        (Arc::new(connection), receiver)
    }

    #[test]
    fn a_connection_is_unreachable_until_open_and_after_removal() {
        let registry = Registry::default();
        let (conn, mut receiver) = connection("abc=");
        registry.insert(Arc::clone(&conn));
        assert_eq!(
            registry.open("abc=").unwrap_err(),
            Unreachable::StillConnecting
        );
        conn.mark_open();
        let found = registry.open("abc=").unwrap();
        assert!(found.send(Outbound::Text("hi".into())));
        assert_eq!(receiver.try_recv().unwrap(), Outbound::Text("hi".into()));
        registry.remove("abc=");
        assert_eq!(registry.open("abc=").unwrap_err(), Unreachable::Unknown);
        assert!(registry.is_empty());
    }

    #[test]
    fn sending_to_an_ended_session_reports_it() {
        let (conn, receiver) = connection("x");
        drop(receiver);
        assert!(!conn.send(Outbound::Text("late".into())));
    }
}
