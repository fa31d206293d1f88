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
//! assertions; lengths count the bytes on the wire, header included. The receipt is timed from
//! the header's send time alone ([`Stamp::latency`]), so the publisher may be another process
//! on another machine; a new layout would take a new version byte in the magic.
//!
//! # The registry
//!
//! Every stamped QoS 1/2 message this process publishes is registered by its id until a user
//! of this process receives it, or for [`STAMP_LOSS_WINDOW`] to twice that at most;
//! [`stamped_stats`] reads the counts. It holds ids only: the timing needs nothing from the
//! publisher but the header.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;

/// The first bytes of a stamped payload: `\0LD` and the header's format version, 1.
pub const STAMP_MAGIC: [u8; 4] = [0x00, b'L', b'D', 0x01];
/// Length of the stamp header, in bytes.
pub const STAMP_LEN: usize = 20;
/// How long the id of a received stamped QoS 1/2 message is remembered, so that further
/// receipts of it count as [`StampedStats::duplicates`] (between this and twice this).
pub const STAMP_DUPLICATE_WINDOW: Duration = Duration::from_secs(30);
/// How long a stamped QoS 1/2 message this process published waits to be received: one not
/// received within this (up to twice this) counts as [lost](StampedStats::lost) for good and
/// its id is forgotten, so a process that publishes with no subscriber of its own (say, one
/// side of a distributed test) holds the ids of the last minute or two only, not of the whole
/// run. A later receipt of it is timed and recorded as usual but counted nowhere.
pub const STAMP_LOSS_WINDOW: Duration = Duration::from_secs(60);

/// The header of a stamped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Publisher's send time, microseconds since the Unix epoch.
    pub(crate) sent_us: u64,
    /// Message id.
    pub(crate) id: u64,
}

impl Stamp {
    /// The stamp of message `id`, sent now.
    pub(crate) fn now(id: u64) -> Self {
        Self {
            sent_us: now_us(),
            id,
        }
    }

    /// The publisher's send time, and the time from it to `arrived` (zero when `arrived` is
    /// earlier: the two clocks disagree by more than the latency).
    pub(crate) fn latency(&self, arrived: SystemTime) -> (SystemTime, Duration) {
        let sent = UNIX_EPOCH
            .checked_add(Duration::from_micros(self.sent_us))
            .unwrap_or(arrived);
        (sent, arrived.duration_since(sent).unwrap_or(Duration::ZERO))
    }
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
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Counts of stamped messages in this process since it started (or since
/// [`reset_stamped_stats`]).
///
/// Loss is counted for QoS 1 and 2 only, and within one process: a stamped QoS 1/2 message is
/// *published* once its PUBLISH was handed to a live connection, *received* once any user of
/// this process received it, and *lost* while neither has happened (for good after
/// [`STAMP_LOSS_WINDOW`] to twice that). So
/// `published == received + lost()` always holds; read the counts after the run stopped
/// (messages still in flight count as lost), and give every stamped topic a subscriber in this
/// process, or its messages all count as lost. Messages stamped by another process are timed
/// and recorded as `MQTT_RECV` events like any other, but counted here by nobody: their
/// publisher's process counts them as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StampedStats {
    /// Stamped QoS 1/2 messages published.
    pub published: u64,
    /// Of those, how many at least one subscriber received.
    pub received: u64,
    /// Further receipts of stamped QoS 1/2 messages already received (a second subscriber, or a
    /// QoS 1 duplicate), within [`STAMP_DUPLICATE_WINDOW`] of the first.
    pub duplicates: u64,
    /// Receipts of stamped messages (any QoS, any publisher) that were not recorded as
    /// `MQTT_RECV` events because the subscriber's receipt queue was full
    /// ([`RECEIPT_BUFFER`](crate::RECEIPT_BUFFER) receipts not yet recorded).
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
    registry().inner.lock().stats()
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

/// Ids in two generations: the current one, and the one before it. Rotating drops the older
/// generation, so an id stays between one and two windows.
#[derive(Default)]
struct Generations {
    current: HashSet<u64>,
    before: HashSet<u64>,
}

impl Generations {
    fn insert(&mut self, id: u64) -> bool {
        !self.before.contains(&id) && self.current.insert(id)
    }

    fn remove(&mut self, id: u64) -> bool {
        self.current.remove(&id) || self.before.remove(&id)
    }

    fn contains(&self, id: u64) -> bool {
        self.current.contains(&id) || self.before.contains(&id)
    }

    fn len(&self) -> usize {
        self.current.len() + self.before.len()
    }

    /// How many rotations are due `now` after the last one at `rotated`: none within a
    /// window, one after it, two (everything forgotten) after two windows of silence.
    fn due(rotated: Instant, now: Instant, window: Duration) -> u32 {
        let elapsed = now.saturating_duration_since(rotated);
        u32::from(elapsed >= window) + u32::from(elapsed >= window * 2)
    }

    /// Starts a new generation; returns how many ids the dropped one still held.
    fn rotate(&mut self) -> usize {
        let dropped = std::mem::replace(&mut self.before, std::mem::take(&mut self.current));
        dropped.len()
    }
}

struct Inner {
    stats: StampedStats,
    /// QoS 1/2 ids published and not yet received, rotated every [`STAMP_LOSS_WINDOW`].
    outstanding: Generations,
    /// Ids that stayed outstanding past the loss window: lost for good, forgotten.
    expired: u64,
    outstanding_rotated: Instant,
    /// QoS 1/2 ids received, rotated every [`STAMP_DUPLICATE_WINDOW`].
    seen: Generations,
    seen_rotated: Instant,
}

impl Inner {
    fn new() -> Self {
        Self {
            stats: StampedStats::default(),
            outstanding: Generations::default(),
            expired: 0,
            outstanding_rotated: Instant::now(),
            seen: Generations::default(),
            seen_rotated: Instant::now(),
        }
    }

    fn stats(&self) -> StampedStats {
        StampedStats {
            lost: self.expired + self.outstanding.len() as u64,
            ..self.stats
        }
    }

    fn rotate_if_due(&mut self, now: Instant) {
        for _ in 0..Generations::due(self.outstanding_rotated, now, STAMP_LOSS_WINDOW) {
            self.expired += self.outstanding.rotate() as u64;
            self.outstanding_rotated = now;
        }
        for _ in 0..Generations::due(self.seen_rotated, now, STAMP_DUPLICATE_WINDOW) {
            self.seen.rotate();
            self.seen_rotated = now;
        }
    }

    fn published(&mut self, id: u64, now: Instant) {
        self.rotate_if_due(now);
        if self.outstanding.insert(id) {
            self.stats.published += 1;
        }
    }

    fn withdrawn(&mut self, id: u64) {
        if self.outstanding.remove(id) {
            self.stats.published = self.stats.published.saturating_sub(1);
        }
    }

    fn received(&mut self, id: u64, now: Instant) {
        self.rotate_if_due(now);
        if self.outstanding.remove(id) {
            self.stats.received += 1;
            self.seen.insert(id);
        } else if self.seen.contains(id) {
            self.stats.duplicates += 1;
        }
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

/// Registers a stamped QoS 1/2 message about to be published (QoS 0 ones are not counted).
pub(crate) fn published(id: u64) {
    registry().inner.lock().published(id, Instant::now());
}

/// Takes back a registration whose PUBLISH never reached the connection.
pub(crate) fn withdrawn(id: u64) {
    registry().inner.lock().withdrawn(id);
}

/// Counts the receipt of a stamped message (of any publisher and QoS).
pub(crate) fn received(id: u64) {
    registry().inner.lock().received(id, Instant::now());
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
    fn unreceived_ids_are_forgotten_after_the_loss_window_and_stay_counted_as_lost() {
        let mut inner = Inner::new();
        let start = inner.outstanding_rotated;
        // A publish-only process: 1,000 messages in each of five loss windows.
        for window in 0..5u32 {
            let now = start + STAMP_LOSS_WINDOW * window + Duration::from_millis(1);
            for i in 0..1_000 {
                inner.published(u64::from(window) * 1_000 + i, now);
            }
            let stats = inner.stats();
            assert_eq!(stats.published, 1_000 * u64::from(window + 1));
            assert_eq!(stats.published, stats.received + stats.lost());
            // Only the ids of the current and the previous window are held.
            assert!(
                inner.outstanding.len() <= 2_000,
                "{}",
                inner.outstanding.len()
            );
        }
        assert_eq!(inner.expired, 3_000);
        // A message of the previous window can still be received; an expired one is counted
        // nowhere.
        let now = start + STAMP_LOSS_WINDOW * 4 + Duration::from_millis(2);
        inner.received(3_500, now);
        inner.received(10, now);
        let stats = inner.stats();
        assert_eq!(stats.received, 1);
        assert_eq!(stats.duplicates, 0);
        assert_eq!(stats.published, stats.received + stats.lost());
        assert_eq!(stats.lost(), 4_999);
    }

    #[test]
    fn a_second_receipt_within_the_window_is_a_duplicate() {
        let mut inner = Inner::new();
        let now = inner.seen_rotated;
        inner.published(7, now);
        inner.received(7, now);
        inner.received(7, now + STAMP_DUPLICATE_WINDOW / 2);
        assert_eq!(inner.stats().duplicates, 1);
        // Two windows later the id is forgotten.
        inner.received(7, now + STAMP_DUPLICATE_WINDOW * 2);
        inner.received(7, now + STAMP_DUPLICATE_WINDOW * 3);
        let stats = inner.stats();
        assert_eq!((stats.received, stats.duplicates, stats.lost()), (1, 1, 0));
    }

    #[test]
    fn ids_are_unique() {
        let a = next_id();
        let b = next_id();
        assert_ne!(a, b);
        assert_eq!(a >> 32, b >> 32);
    }
}
