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

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
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

/// A hasher for timestamps (nanoseconds: already spread; one multiply).
#[derive(Default)]
struct NsHasher(u64);

impl Hasher for NsHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// What a series' points share: their escaped start, and the timestamps they used since the
/// last send.
struct SeriesLines {
    prefix: String,
    used: HashSet<u64, BuildHasherDefault<NsHasher>>,
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
}

impl Lines {
    fn new(measurement: String) -> Self {
        Self {
            measurement,
            text: Vec::new(),
            ends: Vec::new(),
            series: HashMap::new(),
        }
    }

    /// Formats the points of `series` from `from` until the text reaches `max_bytes`; returns
    /// the index of the first point not formatted.
    fn push(&mut self, series: &Series, from: usize, max_bytes: usize) -> usize {
        let key = (series.request_type.clone(), series.name.clone());
        let measurement = &self.measurement;
        let lines = self.series.entry(key).or_insert_with(|| {
            let mut prefix = String::new();
            line::write_series_prefix(measurement, &series.request_type, &series.name, &mut prefix);
            SeriesLines {
                prefix,
                used: HashSet::default(),
            }
        });
        let mut at = from;
        while at < series.points.len() {
            let point = &series.points[at];
            let mut timestamp = point.end_ns();
            while !lines.used.insert(timestamp) {
                timestamp += 1;
            }
            self.text.extend_from_slice(lines.prefix.as_bytes());
            line::write_fields(
                point.response_time,
                point.response_length,
                point.error.as_deref(),
                timestamp,
                &mut self.text,
            );
            self.text.push(b'\n');
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
