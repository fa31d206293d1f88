//! The floor under any Tokio-based WebSocket generator: `--users` tasks, each with one
//! connection doing bare `sendrecv` round trips of a pre-encoded masked "hello" text frame,
//! with nothing recorded, parsed or timed. Prints the round trips as one JSON line (the caller
//! measures the process's CPU time). Run by `bench/vs_python_loaddensity.py --floor` against the testkit echo
//! server; traffic goes only to the address given (the script passes 127.0.0.1).
//!
//! usage: ld-bench-floor ws://127.0.0.1:PORT/echo SECONDS USERS

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

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
/// How long after the end a user may still wait for its last reply.
const GRACE: Duration = Duration::from_secs(5);
/// The server's unmasked reply: header (2 bytes) and "hello".
const REPLY_LEN: usize = 7;

async fn user(
    addr: String,
    path: String,
    until: Instant,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
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
        while got < REPLY_LEN {
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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, seconds, users] = args.as_slice() else {
        bail!("usage: ld-bench-floor ws://127.0.0.1:PORT/PATH SECONDS USERS");
    };
    let rest = url
        .strip_prefix("ws://")
        .context("the URL must start with ws://")?;
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    let users: usize = users.parse().context("USERS")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::try_from_secs_f64(seconds).context("SECONDS")?;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..users)
            .map(|_| {
                let user = user(addr.to_owned(), path.to_owned(), until, count.clone());
                // A server that stops answering cannot keep the process alive.
                tokio::spawn(tokio::time::timeout_at((until + GRACE).into(), user))
            })
            .collect();
        for task in tasks {
            task.await?
                .context("a user was still waiting for a reply after the run")??;
        }
        anyhow::Ok(())
    })?;
    let messages = count.load(Ordering::Relaxed);
    println!(
        "{{\"messages\": {messages}, \"wall_s\": {:.3}}}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
