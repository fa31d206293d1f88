//! Client CPU per request: `fast_http_user` against a plain hyper HTTP/1.1 client connection
//! (`hyper::client::conn::http1`, the connection driven by a spawned task), same server, same
//! event recording.
//!
//! Run: `cargo bench -p load-density-fast-http --bench client_cpu`
//! (`-- --requests 20000 --users 16` to change the load).
//!
//! The testkit target runs on its own thread; every client runs on a current-thread runtime on
//! the main thread, whose CPU time (from `/proc/thread-self/schedstat`) is the client's cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use load_density_core::context::StopHandle;
use load_density_core::tls::{client_config, TlsSettings};
use load_density_core::variables::UserVariables;
use load_density_core::{
    EventBus, GroupPlan, RequestMeta, RequestTimer, Response, TaskList, UserContext,
};
use load_density_testkit::HttpTarget;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

struct Args {
    requests: usize,
    users: usize,
}

fn args() -> Args {
    let mut args = Args {
        requests: 20_000,
        users: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .expect("a number after the flag")
        };
        match arg.as_str() {
            "--requests" => args.requests = value(),
            "--users" => args.users = value(),
            _ => {}
        }
    }
    args
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("run time in schedstat");
    Duration::from_nanos(ns)
}

struct Measured {
    requests: usize,
    wall: Duration,
    cpu: Duration,
}

impl Measured {
    fn per_cpu_second(&self) -> f64 {
        self.requests as f64 / self.cpu.as_secs_f64()
    }
    fn print(&self, label: &str) {
        println!(
            "{label:<28} {:>8.0} req/s wall  {:>9.0} req per client CPU-second  ({:.1} us CPU/request)",
            self.requests as f64 / self.wall.as_secs_f64(),
            self.per_cpu_second(),
            self.cpu.as_secs_f64() * 1e6 / self.requests as f64
        );
    }
}

fn context(bus: &Arc<EventBus>) -> UserContext {
    UserContext::new(
        1,
        bus.clone(),
        UserVariables::default(),
        StopHandle::new().signal(),
    )
}

async fn fast_http(base: &str, args: &Args) -> Measured {
    let tasks = TaskList::from_json(&json!([{"method": "get", "url": "/", "verify": false}]))
        .expect("tasks");
    let plan = GroupPlan::new("fast_http_user", tasks).with_host(Some(base.to_owned()));
    let factory = load_density_core::registry::lookup(load_density_fast_http::USER_TYPE)
        .expect("registered")
        .protocol()
        .prepare(&plan)
        .await
        .expect("prepare");
    let bus = Arc::new(EventBus::new(1));
    let per_user = args.requests / args.users;
    let cpu = thread_cpu();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for id in 0..args.users {
        let mut user = factory.new_user(id as u64);
        let mut ctx = context(&bus);
        set.spawn(async move {
            for _ in 0..per_user {
                user.run_task(0, &mut ctx).await;
            }
            user.on_stop(&mut ctx).await;
        });
    }
    while set.join_next().await.is_some() {}
    let measured = Measured {
        requests: per_user * args.users,
        wall: start.elapsed(),
        cpu: thread_cpu() - cpu,
    };
    assert_eq!(bus.flush(), measured.requests);
    measured
}

struct Plain {
    status: u16,
    len: u64,
}

impl Response for Plain {
    fn status(&self) -> Option<u16> {
        Some(self.status)
    }
    fn length(&self) -> u64 {
        self.len
    }
}

async fn hyper_conn(target: &HttpTarget, args: &Args) -> Measured {
    let addr = target.addr();
    let tls = target.is_tls().then(|| {
        tokio_rustls::TlsConnector::from(
            client_config(&TlsSettings {
                insecure: true,
                alpn: vec![b"http/1.1".to_vec()],
                ..TlsSettings::default()
            })
            .expect("tls config"),
        )
    });
    let bus = Arc::new(EventBus::new(1));
    let meta = RequestMeta::new("GET", "/", target.url("/"));
    let host = addr.to_string();
    let per_user = args.requests / args.users;
    let cpu = thread_cpu();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..args.users {
        let (bus, meta, host, tls) = (bus.clone(), meta.clone(), host.clone(), tls.clone());
        set.spawn(async move {
            let mut ctx = context(&bus);
            let tcp = TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let mut sender = match tls {
                None => {
                    let (sender, conn) =
                        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
                            .await
                            .expect("handshake");
                    tokio::spawn(conn);
                    sender
                }
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                    let stream = tls.connect(name, tcp).await.expect("tls");
                    let (sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
                        TokioIo::new(stream),
                    )
                    .await
                    .expect("handshake");
                    tokio::spawn(conn);
                    sender
                }
            };
            for _ in 0..per_user {
                let timer = RequestTimer::start();
                let request = hyper::Request::builder()
                    .method(hyper::Method::GET)
                    .uri("/")
                    .header(hyper::header::HOST, host.as_str())
                    .header(hyper::header::USER_AGENT, "load-density")
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let response = sender.send_request(request).await.expect("response");
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                ctx.record_response(
                    &meta,
                    timer,
                    &Plain {
                        status,
                        len: body.len() as u64,
                    },
                );
            }
        });
    }
    while set.join_next().await.is_some() {}
    let measured = Measured {
        requests: per_user * args.users,
        wall: start.elapsed(),
        cpu: thread_cpu() - cpu,
    };
    assert_eq!(bus.flush(), measured.requests);
    measured
}

fn main() {
    let args = args();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let (plain, tls) = server.block_on(async {
        (
            HttpTarget::start().await.expect("target"),
            HttpTarget::start_tls().await.expect("tls target"),
        )
    });
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    println!(
        "{} requests, {} users, one connection each, GET / (2-byte body)",
        args.requests, args.users
    );
    client.block_on(async {
        // Warm up both paths (connections, TLS configurations, allocator).
        let warm = Args {
            requests: args.users * 50,
            users: args.users,
        };
        fast_http(&plain.base_url(), &warm).await;
        hyper_conn(&plain, &warm).await;
        for round in 0..2 {
            println!("round {}", round + 1);
            let ours = fast_http(&plain.base_url(), &args).await;
            ours.print("fast_http_user   http");
            let hyper = hyper_conn(&plain, &args).await;
            hyper.print("hyper conn::http1 http");
            println!(
                "  ratio (fast_http_user / hyper), requests per CPU-second: {:.2}",
                ours.per_cpu_second() / hyper.per_cpu_second()
            );
            let ours = fast_http(&tls.base_url(), &args).await;
            ours.print("fast_http_user   https");
            let hyper = hyper_conn(&tls, &args).await;
            hyper.print("hyper conn::http1 https");
            println!(
                "  ratio (fast_http_user / hyper), requests per CPU-second: {:.2}",
                ours.per_cpu_second() / hyper.per_cpu_second()
            );
        }
    });
    drop(plain);
    drop(tls);
    drop(server);
}
