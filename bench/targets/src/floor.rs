//! Floor loads: the least a Tokio-based generator can do per request or message, with
//! nothing recorded, timed or checked beyond what finds the end of a reply. `ld-bench-floor`
//! runs them against a target alone (its CPU time is the floor's), `ld-bench-timer-lag` runs
//! the HTTP one under its timer probes. Each user loops until `until`, then adds what it did to
//! `count`. Traffic goes only to the address given (the drivers in `bench/` pass 127.0.0.1).

use std::future::Future;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// How long after the end a floor user may still wait for its last reply.
const GRACE: Duration = Duration::from_secs(5);

/// Spawns `users` floor users made by `user` (each given the shared counter) on the current
/// runtime and waits for them all; returns what they counted. A server that stops answering
/// cannot keep them past `until` and a grace period: that is an error, as is any user's.
pub async fn run_users<F, Fut>(users: usize, until: Instant, user: F) -> anyhow::Result<u64>
where
    F: Fn(Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..users)
        .map(|_| {
            let user = user(count.clone());
            tokio::spawn(tokio::time::timeout_at((until + GRACE).into(), user))
        })
        .collect();
    for task in tasks {
        task.await?
            .context("a floor user was still waiting for a reply after the run")??;
    }
    Ok(count.load(Ordering::Relaxed))
}

/// A masked text frame carrying "hello" (mask 0x01020304), as a client must send it.
const HELLO_FRAME: [u8; 11] = [
    0x81,
    0x85,
    1,
    2,
    3,
    4,
    b'h' ^ 1,
    b'e' ^ 2,
    b'l' ^ 3,
    b'l' ^ 4,
    b'o' ^ 1,
];
/// The server's unmasked reply to [`HELLO_FRAME`]: header (2 bytes) and "hello".
const HELLO_REPLY_LEN: usize = 7;
/// The largest HTTP response the HTTP floor takes (the benchmarks' nginx page is a few
/// hundred bytes).
const HTTP_RESPONSE_MAX: usize = 16 * 1024;

/// Where a floor load sends its traffic.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port`.
    pub addr: String,
    /// The request path, starting with `/`.
    pub path: String,
}

impl Target {
    /// Splits `scheme://host:port/path` after checking the scheme; the path defaults to `/`.
    pub fn parse(url: &str, scheme: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .with_context(|| format!("the URL must start with {scheme}://, got {url}"))?;
        let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !addr.starts_with("127.") {
            bail!("the floor loads only talk to loopback (127.x.y.z), got {addr}");
        }
        let path = if path.is_empty() { "/" } else { path };
        Ok(Self {
            addr: addr.to_owned(),
            path: path.to_owned(),
        })
    }
}

async fn connect(target: &Target) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(&target.addr)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One WebSocket connection of bare round trips: a pre-encoded "hello" frame written, the
/// 7-byte echo read back, no frame parsed.
pub async fn ws_bare(target: Target, until: Instant, count: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut stream = connect(&target).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.addr
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("upgrade refused: {}", String::from_utf8_lossy(&head));
    }
    // A buffer larger than the reply, so a read that returns less than it tells Tokio the
    // socket is drained (no extra read that would fail with EAGAIN).
    let mut reply = [0u8; 64];
    let mut done = 0u64;
    while Instant::now() < until {
        stream.write_all(&HELLO_FRAME).await?;
        let mut got = 0;
        while got < HELLO_REPLY_LEN {
            match stream.read(&mut reply[got..]).await? {
                0 => bail!("the server closed the connection"),
                n => got += n,
            }
        }
        done += 1;
    }
    count.fetch_add(done, Ordering::Relaxed);
    Ok(())
}

/// One WebSocket connection through tokio-tungstenite, the library the `websocket_user` is
/// built on: `send(Message::text("hello"))`, then the next message, with nothing timed or
/// recorded ([`Work::Bare`]) or each round trip timed and recorded ([`Work::Measured`]), and
/// the library's buffers set for small frames. What this costs over [`ws_bare`] is the library's own work per message.
pub async fn ws_tungstenite(
    target: Target,
    work: Work,
    until: Instant,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let stream = connect(&target).await?;
    let url = format!("ws://{}{}", target.addr, target.path);
    // tungstenite's default 128 KiB read buffer is zero-filled before every read, which
    // would make this floor mostly memset; 4 KiB reads and unbuffered writes (every message
    // is flushed anyway) are what a generator sets.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .context("the WebSocket handshake")?;
    let mut latencies = match work {
        Work::Bare => None,
        Work::Measured => Some(Latencies::new()?),
    };
    let mut done = 0u64;
    while Instant::now() < until {
        let started = Instant::now();
        socket.send(Message::text("hello")).await?;
        match socket.next().await {
            Some(Ok(Message::Text(_))) => done += 1,
            Some(Ok(other)) => bail!("unexpected reply {other:?}"),
            Some(Err(error)) => return Err(error.into()),
            None => bail!("the server closed the connection"),
        }
        if let Some(latencies) = &mut latencies {
            latencies.record(started);
        }
    }
    if let Some(latencies) = latencies {
        latencies.finish();
    }
    count.fetch_add(done, Ordering::Relaxed);
    Ok(())
}

/// How much of a load tester's own work a floor does per request or message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Nothing: the reply is only counted.
    Bare,
    /// What any load tester must do per request, with the libraries LoadDensity uses: read
    /// the reply whole (for HTTP, its head parsed by httparse: status, `Content-Length`), read
    /// the monotonic clock before the request and after the reply, and record the latency
    /// into an HDR histogram. Nothing else: no task language, no names, no events, no
    /// collector.
    Measured,
}

/// The latencies of a [`Work::Measured`] floor user: one HDR histogram, read at the end so
/// that recording into it is not optimised away.
struct Latencies(hdrhistogram::Histogram<u64>);

impl Latencies {
    fn new() -> anyhow::Result<Self> {
        Ok(Self(hdrhistogram::Histogram::new(3)?))
    }

    fn record(&mut self, started: Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros);
    }

    fn finish(self) {
        std::hint::black_box(self.0.value_at_quantile(0.99));
    }
}

/// One HTTP/1.1 keep-alive connection of `GET path` requests, pre-encoded. With
/// [`Work::Bare`] the first response is parsed (httparse) to learn its length, which
/// every later one must have (a static page from nginx: the `Date` header keeps its width),
/// and later responses are only counted in bytes and checked to start with `HTTP/1.1 200 `;
/// with [`Work::Measured`] every response is parsed, timed and recorded.
pub async fn http(
    target: Target,
    work: Work,
    until: Instant,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut stream = connect(&target).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ld-bench-floor\r\n\r\n",
        target.path, target.addr
    );
    let mut latencies = match work {
        Work::Bare => None,
        Work::Measured => Some(Latencies::new()?),
    };
    let mut buffer = vec![0u8; HTTP_RESPONSE_MAX];
    // The bare floor's: the first response's length, which every later one must have.
    let mut known_len = None;
    let mut done = 0u64;
    while Instant::now() < until {
        let started = latencies.is_some().then(Instant::now);
        stream.write_all(request.as_bytes()).await?;
        let mut got = 0;
        let len = loop {
            match stream.read(&mut buffer[got..]).await? {
                0 => bail!("the server closed the connection"),
                n => got += n,
            }
            let len = match known_len {
                Some(len) => Some(len),
                None => match parse_response(&buffer[..got])? {
                    Some((200, len)) => Some(len),
                    Some((status, _)) => bail!("status {status}, not 200"),
                    None => None,
                },
            };
            if let Some(len) = len.filter(|len| got >= *len) {
                break len;
            }
            if got == buffer.len() {
                bail!("a response longer than {HTTP_RESPONSE_MAX} bytes");
            }
        };
        if let (Some(latencies), Some(started)) = (&mut latencies, started) {
            latencies.record(started);
        }
        if got != len || !buffer.starts_with(b"HTTP/1.1 200 ") {
            bail!(
                "a response of {got} bytes, not {len}, or not 200: {}",
                String::from_utf8_lossy(&buffer[..got.min(200)])
            );
        }
        if work == Work::Bare {
            known_len = Some(len);
        }
        done += 1;
    }
    if let Some(latencies) = latencies {
        latencies.finish();
    }
    count.fetch_add(done, Ordering::Relaxed);
    Ok(())
}

/// The status and whole length of the response in `bytes` (head and `Content-Length`
/// body), or `None` while its head is incomplete.
fn parse_response(bytes: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 32];
    let mut response = httparse::Response::new(&mut []);
    let httparse::Status::Complete(head_len) = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut response, bytes, &mut headers)?
    else {
        return Ok(None);
    };
    let body_len = response
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("content-length"))
        .context("the floor needs a Content-Length response")?
        .value;
    let body_len: usize = std::str::from_utf8(body_len)?.trim().parse()?;
    Ok(Some((response.code.unwrap_or(0), head_len + body_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_length_is_its_head_plus_its_content_length() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(
            parse_response(response).unwrap(),
            Some((200, response.len()))
        );
        assert_eq!(parse_response(&response[..10]).unwrap(), None);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn targets_must_be_loopback() {
        let target = Target::parse("http://127.0.0.1:8080/index.html", "http").unwrap();
        assert_eq!(target.addr, "127.0.0.1:8080");
        assert_eq!(target.path, "/index.html");
        assert_eq!(Target::parse("ws://127.0.0.1:9", "ws").unwrap().path, "/");
        assert!(Target::parse("http://10.0.0.1:80/", "http").is_err());
        assert!(Target::parse("ws://127.0.0.1:80/", "http").is_err());
    }
}
