//! Request counters shared between the accept loop and the [`crate::HttpTarget`] handle.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Exact request counters: a global total plus one counter per request path.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    total: AtomicU64,
    per_path: Mutex<HashMap<String, u64>>,
    /// Source of unique tokens for `/token` (never reset).
    tokens: AtomicU64,
    /// Sessions `/app/login` issued (forgotten by `forget_sessions`).
    sessions: Mutex<std::collections::HashSet<String>>,
    /// Connections accepted per source address.
    pub(crate) peers: Peers,
}

impl Stats {
    /// Records one request for `path` (the URI path, without query).
    #[inline]
    pub(crate) fn record(&self, path: &str) {
        self.total.fetch_add(1, Ordering::SeqCst);
        let mut map = self.per_path.lock();
        if let Some(count) = map.get_mut(path) {
            *count += 1;
        } else {
            map.insert(path.to_owned(), 1);
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    pub(crate) fn by_prefix(&self, prefix: &str) -> u64 {
        self.per_path
            .lock()
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, count)| *count)
            .sum()
    }

    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = self
            .per_path
            .lock()
            .iter()
            .map(|(path, count)| (path.clone(), *count))
            .collect();
        counts.sort();
        counts
    }

    pub(crate) fn reset(&self) {
        let mut map = self.per_path.lock();
        self.total.store(0, Ordering::SeqCst);
        map.clear();
    }

    /// Returns the next unique token number (starting at 1).
    pub(crate) fn next_token(&self) -> u64 {
        self.tokens.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Issues a new `/app/login` session.
    pub(crate) fn new_session(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let session = format!("sess-{:06}-{nanos:08x}", self.next_token());
        self.sessions.lock().insert(session.clone());
        session
    }

    /// Whether `/app/login` issued `session`.
    pub(crate) fn has_session(&self, session: &str) -> bool {
        self.sessions.lock().contains(session)
    }

    /// Forgets every issued session.
    pub(crate) fn forget_sessions(&self) {
        self.sessions.lock().clear();
    }
}

/// Connections accepted per source (peer) address.
#[derive(Debug, Default)]
pub(crate) struct Peers(Mutex<BTreeMap<IpAddr, u64>>);

impl Peers {
    /// Records one connection from `peer`.
    pub(crate) fn record(&self, peer: IpAddr) {
        *self.0.lock().entry(peer).or_default() += 1;
    }

    /// Connections per source address, in address order.
    pub(crate) fn snapshot(&self) -> Vec<(IpAddr, u64)> {
        self.0.lock().iter().map(|(ip, n)| (*ip, *n)).collect()
    }
}
