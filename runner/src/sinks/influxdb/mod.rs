//! The InfluxDB sink (`LD_start_influxdb_sink`, `LD_stop_influxdb_sink`): one line-protocol
//! point per request ([`mod@line`]), sent over UDP or HTTP.
//!
//! Unlike the Python sink, which wrote each point synchronously inside the request event, the
//! points are batched (by size, and at least every second) and sent from one thread of the
//! sink's own, off every run's path; [`stop_influxdb_sink`] flushes what is left. Over HTTP the
//! batch is POSTed to `url` as given, so both InfluxDB 1.x (`http://HOST:8086/write?db=DB`)
//! and 2.x (`http://HOST:8086/api/v2/write?org=ORG&bucket=BUCKET`) work; `token` is sent as
//! `Authorization: Token <token>`. Over UDP each datagram stays under 64 KiB. Points that
//! cannot be delivered (an unreachable server, an HTTP error) are counted: the first failure
//! is logged as a warning, and the count at stop.

pub mod line;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use super::{hub, Feed, Series, SinkError};

const EXPORTER: &str = "InfluxDB sink";

/// Largest UDP payload sent (InfluxDB reads datagrams of up to 64 KiB).
pub const MAX_DATAGRAM_BYTES: usize = 60 * 1024;
/// Largest HTTP body sent in one write.
pub const MAX_HTTP_BATCH_BYTES: usize = 1024 * 1024;
/// How often a partial batch is sent.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// `LD_start_influxdb_sink`'s arguments (defaults as in Python).
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxSettings {
    /// `udp` or `http` (case-insensitive).
    pub transport: String,
    /// The UDP target host.
    pub host: String,
    /// The UDP target port.
    pub port: u16,
    /// The HTTP write URL (required for `http`).
    pub url: Option<String>,
    /// A token for `Authorization: Token <token>` (HTTP).
    pub token: Option<String>,
    /// The measurement name.
    pub measurement: String,
    /// The HTTP timeout in seconds.
    pub timeout: f64,
}

impl Default for InfluxSettings {
    fn default() -> Self {
        Self {
            transport: "udp".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 8089,
            url: None,
            token: None,
            measurement: "loaddensity_request".to_owned(),
            timeout: 2.0,
        }
    }
}

enum Transport {
    Udp {
        socket: UdpSocket,
        target: SocketAddr,
    },
    Http {
        url: String,
        token: Option<String>,
        timeout: Duration,
    },
}

impl InfluxSettings {
    /// Checks the arguments and resolves the UDP target.
    fn transport(&self) -> Result<Transport, SinkError> {
        match self.transport.to_ascii_lowercase().as_str() {
            "udp" => {
                let target = (self.host.as_str(), self.port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or_else(|| {
                        SinkError::Invalid(format!(
                            "host {:?} does not resolve to an address",
                            self.host
                        ))
                    })?;
                let local: SocketAddr = if target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local).map_err(|source| SinkError::Bind {
                    addr: local.to_string(),
                    source,
                })?;
                Ok(Transport::Udp { socket, target })
            }
            "http" => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| SinkError::Invalid("url required when transport=http".into()))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(SinkError::Invalid(
                        "InfluxDB URL must use http:// or https://".into(),
                    ));
                }
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| SinkError::Invalid(format!("url {url:?}: {e}")))?;
                if parsed.path() == "/" || parsed.path().is_empty() {
                    return Err(SinkError::Invalid(format!(
                        "url {url:?} names no write endpoint: use http://HOST:8086/write?db=DB \
                         (InfluxDB 1.x) or http://HOST:8086/api/v2/write?org=ORG&bucket=BUCKET \
                         (2.x)"
                    )));
                }
                if !(self.timeout.is_finite() && self.timeout > 0.0) {
                    return Err(SinkError::Invalid(format!(
                        "timeout must be a positive number of seconds, got {}",
                        self.timeout
                    )));
                }
                Ok(Transport::Http {
                    url: url.to_owned(),
                    token: self.token.clone(),
                    timeout: Duration::from_secs_f64(self.timeout),
                })
            }
            other => Err(SinkError::Invalid(format!(
                "unsupported transport: {other}"
            ))),
        }
    }
}

struct Running {
    settings: InfluxSettings,
    feed_id: u64,
    writer: JoinHandle<()>,
    stats: Arc<SinkStats>,
}

/// What the sink delivered and lost.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Points sent successfully.
    pub sent: AtomicU64,
    /// Points whose write failed.
    pub failed: AtomicU64,
}

fn state() -> &'static Mutex<Option<Running>> {
    static STATE: Mutex<Option<Running>> = Mutex::new(None);
    &STATE
}

/// Starts the sink. Starting it again with the same settings does nothing.
///
/// # Errors
/// [`SinkError::Invalid`] for a bad argument (with the Python messages: `unsupported
/// transport: <t>`, `url required when transport=http`, `InfluxDB URL must use http:// or
/// https://`), [`SinkError::AlreadyRunning`] when it runs with other settings.
pub fn start_influxdb_sink(settings: InfluxSettings) -> Result<(), SinkError> {
    if settings.measurement.is_empty() {
        return Err(SinkError::Invalid("measurement must not be empty".into()));
    }
    let transport = settings.transport()?;
    let mut state = state().lock();
    if let Some(running) = state.as_ref() {
        if running.settings == settings {
            return Ok(());
        }
        return Err(SinkError::AlreadyRunning {
            exporter: EXPORTER,
            running: describe(&running.settings),
            asked: describe(&settings),
        });
    }
    let feed = hub().subscribe("influxdb");
    let feed_id = feed.id();
    let stats = Arc::new(SinkStats::default());
    let writer = {
        let measurement = settings.measurement.clone();
        let stats = stats.clone();
        std::thread::Builder::new()
            .name("ld-influxdb".to_owned())
            .spawn(move || write_loop(feed, transport, measurement, &stats))
            .map_err(|source| SinkError::Thread {
                exporter: EXPORTER,
                source,
            })?
    };
    *state = Some(Running {
        settings,
        feed_id,
        writer,
        stats,
    });
    Ok(())
}

/// Stops the sink after sending every point it has; returns (points sent, points failed).
/// Does nothing (and returns zeros) when it is not running.
pub fn stop_influxdb_sink() -> (u64, u64) {
    let Some(running) = state().lock().take() else {
        return (0, 0);
    };
    hub().unsubscribe(running.feed_id);
    if running.writer.join().is_err() {
        tracing::error!("the InfluxDB sink's thread panicked");
    }
    let sent = running.stats.sent.load(Ordering::Relaxed);
    let failed = running.stats.failed.load(Ordering::Relaxed);
    if failed > 0 {
        tracing::warn!(
            sent,
            failed,
            "InfluxDB sink stopped: some points were not delivered"
        );
    }
    (sent, failed)
}

/// Logs the points not delivered so far, if any (at the end of each run).
pub(crate) fn report_failures() {
    let state = state().lock();
    let Some(running) = state.as_ref() else {
        return;
    };
    let failed = running.stats.failed.load(Ordering::Relaxed);
    if failed > 0 {
        tracing::warn!(
            failed,
            sent = running.stats.sent.load(Ordering::Relaxed),
            target = %describe(&running.settings),
            "InfluxDB sink: points not delivered so far"
        );
    }
}

fn describe(settings: &InfluxSettings) -> String {
    match settings.transport.to_ascii_lowercase().as_str() {
        "http" => format!(
            "transport http, url {:?}, measurement {:?}",
            settings.url.as_deref().unwrap_or_default(),
            settings.measurement
        ),
        _ => format!(
            "transport udp, {}:{}, measurement {:?}",
            settings.host, settings.port, settings.measurement
        ),
    }
}

/// Reads batches, formats points and sends them, until the feed ends; then flushes.
fn write_loop(mut feed: Feed, transport: Transport, measurement: String, stats: &SinkStats) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the InfluxDB sink cannot start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let mut sender = Sender::new(transport, stats);
        let mut lines = Lines::new(measurement);
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = feed.recv() => {
                    let Some(batch) = batch else { break };
                    for series in batch.iter() {
                        let mut at = 0;
                        while at < series.points.len() {
                            at = lines.push(series, at, sender.max_bytes());
                            if lines.len() >= sender.max_bytes() {
                                sender.send(&mut lines).await;
                            }
                        }
                    }
                }
                _ = tick.tick() => sender.send(&mut lines).await,
            }
        }
        sender.send(&mut lines).await;
        feed.report_dropped();
    });
}

/// The timestamps of one series used since the last send: open addressing on a multiply
/// hash, emptied by moving to a new generation (no pass over the slots).
struct TimestampSet {
    /// (timestamp, generation); a slot of another generation is free.
    slots: Vec<(u64, u32)>,
    generation: u32,
    len: usize,
    /// 64 minus log2 of the slot count.
    shift: u32,
}

impl TimestampSet {
    const MIN_SLOTS: usize = 64;

    fn new() -> Self {
        Self {
            slots: vec![(0, 0); Self::MIN_SLOTS],
            generation: 1,
            len: 0,
            shift: 64 - Self::MIN_SLOTS.trailing_zeros(),
        }
    }

    fn slot_of(&self, timestamp: u64) -> usize {
        (timestamp.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// Adds `timestamp`; false when it was already there.
    #[inline]
    fn insert(&mut self, timestamp: u64) -> bool {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot_of(timestamp);
        loop {
            let slot = &mut self.slots[at];
            if slot.1 != self.generation {
                *slot = (timestamp, self.generation);
                self.len += 1;
                return true;
            }
            if slot.0 == timestamp {
                return false;
            }
            at = (at + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let bigger = vec![(0, 0); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        self.shift -= 1;
        let (generation, len) = (std::mem::replace(&mut self.generation, 1), self.len);
        self.len = 0;
        for (timestamp, _) in old.into_iter().filter(|slot| slot.1 == generation) {
            self.insert(timestamp);
        }
        debug_assert_eq!(self.len, len);
    }

    fn clear(&mut self) {
        self.len = 0;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.fill((0, 0));
            self.generation = 1;
        }
    }
}

/// What a series' points share: a line buffer that starts with their escaped prefix, and the
/// timestamps they used since the last send.
struct SeriesLines {
    /// The prefix, then room for one point's fields and timestamp.
    line: Vec<u8>,
    prefix_len: usize,
    used: TimestampSet,
}

/// Points formatted and not yet sent, as line protocol with one point per line.
struct Lines {
    measurement: String,
    /// The points, as UTF-8 line protocol.
    text: Vec<u8>,
    /// Line boundaries: the end offset of each line (after its `\n`).
    ends: Vec<usize>,
    /// Per (request type, name), at most the hub's name cap plus one: the escaped prefix, and
    /// the timestamps used since the last send (InfluxDB keeps one point per series and
    /// timestamp, so two requests ending in the same nanosecond are nudged apart).
    series: HashMap<(Arc<str>, Arc<str>), SeriesLines>,
    fields: line::FieldWriter,
}

impl Lines {
    fn new(measurement: String) -> Self {
        Self {
            measurement,
            text: Vec::new(),
            ends: Vec::new(),
            series: HashMap::new(),
            fields: line::FieldWriter::default(),
        }
    }

    /// Formats the points of `series` from `from` until the text reaches `max_bytes`; returns
    /// the index of the first point not formatted.
    fn push(&mut self, series: &Series, from: usize, max_bytes: usize) -> usize {
        let lines = match self
            .series
            .get_mut(&(series.request_type.clone(), series.name.clone()))
        {
            Some(lines) => lines,
            None => {
                let mut prefix = String::new();
                line::write_series_prefix(
                    &self.measurement,
                    &series.request_type,
                    &series.name,
                    &mut prefix,
                );
                let prefix_len = prefix.len();
                let mut line = prefix.into_bytes();
                line.resize(prefix_len + line::FIELDS_ROOM + line::TIMESTAMP_ROOM, 0);
                self.series
                    .entry((series.request_type.clone(), series.name.clone()))
                    .or_insert(SeriesLines {
                        line,
                        prefix_len,
                        used: TimestampSet::new(),
                    })
            }
        };
        let prefix_len = lines.prefix_len;
        // Room for the whole series' lines (without errors) up to `max_bytes`, at once.
        let line_room = prefix_len + line::FIELDS_ROOM + line::TIMESTAMP_ROOM;
        let points = series.points.len() - from;
        let lines_room = max_bytes.saturating_sub(self.text.len()) / (prefix_len + 60) + 1;
        self.text.reserve(points.min(lines_room) * line_room);
        self.ends.reserve(points.min(lines_room));
        let mut at = from;
        while at < series.points.len() {
            let point = &series.points[at];
            let mut timestamp = point.end_ns;
            while !lines.used.insert(timestamp) {
                timestamp = timestamp.wrapping_add(1);
            }
            let end = self.fields.put_fields(
                point.response_time,
                point.response_length,
                point.error.is_none(),
                &mut lines.line,
                prefix_len,
            );
            match point.error.as_deref() {
                None => {
                    let end = self.fields.put_timestamp(timestamp, &mut lines.line, end);
                    self.text.extend_from_slice(&lines.line[..end]);
                }
                Some(error) => {
                    self.text.extend_from_slice(&lines.line[..end]);
                    line::push_error_field(error, &mut self.text);
                    let end = self
                        .fields
                        .put_timestamp(timestamp, &mut lines.line, prefix_len);
                    self.text.extend_from_slice(&lines.line[prefix_len..end]);
                }
            }
            self.ends.push(self.text.len());
            at += 1;
            if self.text.len() >= max_bytes {
                break;
            }
        }
        at
    }

    fn len(&self) -> usize {
        self.text.len()
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        for lines in self.series.values_mut() {
            lines.used.clear();
        }
    }
}

struct Sender<'s> {
    transport: Transport,
    client: Option<reqwest::Client>,
    stats: &'s SinkStats,
    warned: bool,
}

impl<'s> Sender<'s> {
    fn new(transport: Transport, stats: &'s SinkStats) -> Self {
        let client = match &transport {
            Transport::Http { timeout, .. } => {
                load_density_core::tls::crypto_provider();
                match reqwest::Client::builder().timeout(*timeout).build() {
                    Ok(client) => Some(client),
                    Err(error) => {
                        tracing::warn!(%error, "InfluxDB sink: cannot build an HTTP client");
                        None
                    }
                }
            }
            Transport::Udp { .. } => None,
        };
        Self {
            transport,
            client,
            stats,
            warned: false,
        }
    }

    fn max_bytes(&self) -> usize {
        match self.transport {
            Transport::Udp { .. } => MAX_DATAGRAM_BYTES,
            Transport::Http { .. } => MAX_HTTP_BATCH_BYTES,
        }
    }

    fn failed(&mut self, points: usize, error: &str) {
        self.stats
            .failed
            .fetch_add(points as u64, Ordering::Relaxed);
        if !std::mem::replace(&mut self.warned, true) {
            tracing::warn!("InfluxDB write failed: {error} (further failures are counted)");
        } else {
            tracing::debug!("InfluxDB write failed: {error}");
        }
    }

    /// Sends every pending line (in datagrams of whole lines under the size limit, for UDP).
    async fn send(&mut self, lines: &mut Lines) {
        if lines.is_empty() {
            return;
        }
        let points = lines.ends.len();
        match &self.transport {
            Transport::Udp { socket, target } => {
                let (socket, target) = (socket, *target);
                let mut start = 0;
                let mut count = 0;
                let mut outcomes = Vec::new();
                for (i, &end) in lines.ends.iter().enumerate() {
                    let next = lines.ends.get(i + 1).copied();
                    count += 1;
                    // Send when the next line would not fit (a line alone is always sent).
                    if next.is_none_or(|n| n - start > MAX_DATAGRAM_BYTES) {
                        let result = socket.send_to(&lines.text[start..end], target);
                        outcomes.push((count, result));
                        start = end;
                        count = 0;
                    }
                }
                for (count, result) in outcomes {
                    match result {
                        Ok(_) => {
                            self.stats.sent.fetch_add(count, Ordering::Relaxed);
                        }
                        Err(error) => self.failed(count as usize, &error.to_string()),
                    }
                }
            }
            Transport::Http { url, token, .. } => {
                let Some(client) = &self.client else {
                    self.failed(points, "no HTTP client");
                    lines.clear();
                    return;
                };
                let mut request = client
                    .post(url)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .body(lines.text.clone());
                if let Some(token) = token {
                    request = request.header("Authorization", format!("Token {token}"));
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        self.stats.sent.fetch_add(points as u64, Ordering::Relaxed);
                    }
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        let body: String = body.chars().take(300).collect();
                        self.failed(points, &format!("HTTP {status}: {body}"));
                    }
                    Err(error) => {
                        let message = crate::executor::error_chain(&error);
                        self.failed(points, &message);
                    }
                }
            }
        }
        lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::TimestampSet;
    use std::collections::HashSet;

    #[test]
    fn the_timestamp_set_agrees_with_a_hash_set() {
        let mut set = TimestampSet::new();
        let mut reference = HashSet::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..50u64 {
            // Rounds of growing size, timestamps close together (many repeats) or far apart.
            for _ in 0..round * 97 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let timestamp = if round % 2 == 0 { state % 500 } else { state };
                assert_eq!(set.insert(timestamp), reference.insert(timestamp));
            }
            assert_eq!(set.len, reference.len());
            set.clear();
            reference.clear();
        }
        assert!(set.insert(0) && !set.insert(0) && set.insert(u64::MAX) && !set.insert(u64::MAX));
    }
}
