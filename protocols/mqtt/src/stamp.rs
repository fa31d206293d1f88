//! Stamped messages: the header a publisher puts in front of the payload, and the process-wide
//! registry that counts stamped messages published, received and lost.
//!
//! # The header
//!
//! `stamp: true` prefixes the payload with 20 bytes:
//!
//! | bytes | content |
//! |---|---|
//! | 0..4 | the magic `00 4C 44 01` (`\0LD` and format version 1) |
//! | 4..12 | the publisher's wall-clock send time, microseconds since the Unix epoch, big-endian |
//! | 12..20 | a message id unique within the publishing process (and, with high probability, across processes), big-endian |
//!
//! A subscriber strips the header before `receive` matches `expect` or hands the body to
//! assertions; lengths count the bytes on the wire, header included.
//!
//! # The registry
//!
//! Every stamped message this process publishes is registered by its id; every stamped message
//! a user of this process receives is looked up. [`stamped_stats`] reads the counts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use load_density_core::RequestTimer;
use parking_lot::Mutex;

/// The first bytes of a stamped payload.
pub const STAMP_MAGIC: [u8; 4] = [0x00, b'L', b'D', 0x01];
/// Length of the stamp header, in bytes.
pub const STAMP_LEN: usize = 20;
/// How long the publisher's send timer of a stamped message is kept for subscribers to time
/// their receipt against (between this and twice this).
pub const STAMP_TIMER_RETENTION: Duration = Duration::from_secs(30);

/// The header of a stamped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Publisher's send time, microseconds since the Unix epoch.
    pub(crate) sent_us: u64,
    /// Message id.
    pub(crate) id: u64,
}

/// Prefixes `payload` with a stamp header.
pub(crate) fn encode(stamp: Stamp, payload: &[u8]) -> Bytes {
    let mut buffer = BytesMut::with_capacity(STAMP_LEN + payload.len());
    buffer.put_slice(&STAMP_MAGIC);
    buffer.put_u64(stamp.sent_us);
    buffer.put_u64(stamp.id);
    buffer.put_slice(payload);
    buffer.freeze()
}

/// Splits a stamped payload into its header and body; `None` for a payload without a stamp.
pub(crate) fn decode(payload: &Bytes) -> Option<(Stamp, Bytes)> {
    if payload.len() < STAMP_LEN || payload[..4] != STAMP_MAGIC {
        return None;
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&payload[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    let stamp = Stamp {
        sent_us: word(4),
        id: word(12),
    };
    Some((stamp, payload.slice(STAMP_LEN..)))
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Counts of stamped messages in this process since it started (or since
/// [`reset_stamped_stats`]).
///
/// Loss is counted for QoS 1 and 2 only: a stamped QoS 1/2 message is *published* once its
/// PUBLISH was handed to a live connection, *received* once any user of this process received
/// it, and *lost* while neither has happened. So `published == received + lost()` always holds;
/// read the counts after the run stopped (messages still in flight count as lost), and give
/// every stamped topic a subscriber in this process, or its messages all count as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StampedStats {
    /// Stamped QoS 1/2 messages published.
    pub published: u64,
    /// Of those, how many at least one subscriber received.
    pub received: u64,
    /// Further receipts of stamped QoS 1/2 messages already received (a second subscriber, or a
    /// QoS 1 duplicate).
    pub duplicates: u64,
    /// Stamped messages received that this process did not publish (or published more than
    /// [`STAMP_TIMER_RETENTION`] twice ago, or before the last reset).
    pub foreign: u64,
    /// Receipts of stamped messages (any QoS) that were not recorded as `MQTT_RECV` events:
    /// no send timer was known for them (see [`StampedStats::foreign`]), or the subscriber's
    /// receipt queue overflowed.
    pub unrecorded: u64,
    lost: u64,
}

impl StampedStats {
    /// Stamped QoS 1/2 messages published that no subscriber of this process has received.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

/// The counts of stamped messages so far.
///
/// ```
/// let stats = load_density_mqtt::stamped_stats();
/// assert_eq!(stats.published, stats.received + stats.lost());
/// ```
pub fn stamped_stats() -> StampedStats {
    let inner = registry().inner.lock();
    StampedStats {
        lost: inner.outstanding.len() as u64,
        ..inner.stats
    }
}

/// Forgets every stamped message and zeroes the counts (call between runs).
pub fn reset_stamped_stats() {
    let mut inner = registry().inner.lock();
    *inner = Inner::new();
}

struct Registry {
    prefix: u64,
    counter: AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    stats: StampedStats,
    /// QoS 1/2 ids published and not yet received.
    outstanding: HashSet<u64>,
    /// Send timers by id (value: the timer, and whether the message is QoS 1/2), in two
    /// generations rotated every [`STAMP_TIMER_RETENTION`].
    current: HashMap<u64, (RequestTimer, bool)>,
    previous: HashMap<u64, (RequestTimer, bool)>,
    rotated: Instant,
}

impl Inner {
    fn new() -> Self {
        Self {
            stats: StampedStats::default(),
            outstanding: HashSet::new(),
            current: HashMap::new(),
            previous: HashMap::new(),
            rotated: Instant::now(),
        }
    }

    fn rotate_if_due(&mut self) {
        if self.rotated.elapsed() >= STAMP_TIMER_RETENTION {
            self.previous = std::mem::take(&mut self.current);
            self.rotated = Instant::now();
        }
    }

    fn timer(&self, id: u64) -> Option<(RequestTimer, bool)> {
        self.current
            .get(&id)
            .or_else(|| self.previous.get(&id))
            .copied()
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        prefix: u64::from(rand::random::<u32>()) << 32,
        counter: AtomicU64::new(0),
        inner: Mutex::new(Inner::new()),
    })
}

/// A new message id, unique in this process.
pub(crate) fn next_id() -> u64 {
    let registry = registry();
    registry.prefix | (registry.counter.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF)
}

/// Registers a stamped message about to be published; `tracked` for QoS 1/2 (loss counted).
pub(crate) fn register(id: u64, timer: RequestTimer, tracked: bool) {
    let mut inner = registry().inner.lock();
    inner.rotate_if_due();
    inner.current.insert(id, (timer, tracked));
    if tracked && inner.outstanding.insert(id) {
        inner.stats.published += 1;
    }
}

/// Takes back a registration whose PUBLISH never reached the connection.
pub(crate) fn unregister(id: u64) {
    let mut inner = registry().inner.lock();
    inner.current.remove(&id);
    inner.previous.remove(&id);
    if inner.outstanding.remove(&id) {
        inner.stats.published = inner.stats.published.saturating_sub(1);
    }
}

/// Counts the receipt of a stamped message and returns its publisher's send timer, when known.
pub(crate) fn received(id: u64) -> Option<RequestTimer> {
    let mut inner = registry().inner.lock();
    let known = inner.timer(id);
    if inner.outstanding.remove(&id) {
        inner.stats.received += 1;
    } else {
        match known {
            Some((_, true)) => inner.stats.duplicates += 1,
            Some((_, false)) => {}
            None => inner.stats.foreign += 1,
        }
    }
    if known.is_none() {
        inner.stats.unrecorded += 1;
    }
    known.map(|(timer, _)| timer)
}

/// Counts receipts that could not be recorded (a full receipt queue).
pub(crate) fn unrecorded(count: u64) {
    registry().inner.lock().stats.unrecorded += count;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_plain_payloads_pass() {
        let stamp = Stamp {
            sent_us: 1_700_000_000_000_001,
            id: 0xDEAD_BEEF_0000_0007,
        };
        let stamped = encode(stamp, b"body");
        assert_eq!(stamped.len(), STAMP_LEN + 4);
        let (decoded, body) = decode(&stamped).expect("stamped");
        assert_eq!(decoded, stamp);
        assert_eq!(&body[..], b"body");
        assert!(decode(&Bytes::from_static(b"plain text payload here")).is_none());
        assert!(decode(&Bytes::from_static(b"\0LD\x01short")).is_none());
    }

    #[test]
    fn ids_are_unique() {
        let a = next_id();
        let b = next_id();
        assert_ne!(a, b);
        assert_eq!(a >> 32, b >> 32);
    }
}
