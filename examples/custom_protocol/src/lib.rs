//! A third-party protocol in one crate: `line_echo_user`, newline-delimited request/reply over
//! TCP.
//!
//! Run the example with `cargo run -p example-custom-protocol`: it starts a local line-echo
//! server on 127.0.0.1 and load-tests it for a few seconds.
//!
//! Everything a protocol needs is here: a task type (validated by serde, unknown keys
//! rejected), a [`Protocol`] that compiles the tasks once, a user that owns its connection and
//! reconnects lazily, and one [`register_user!`] call. Nothing in the runner or the CLI changes.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::task::options::task_seconds;
use load_density_core::template::Template;
use load_density_core::{
    async_trait, register_user, GroupPlan, PlanError, Protocol, RequestMeta, Response, UserContext,
    UserFactory, UserTemplate,
};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One task: send `line`, wait for one line back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineTask {
    /// `host:port` of the server.
    target: String,
    /// The line to send (placeholders allowed).
    line: Template,
    /// Statistics name (default: the target).
    name: Option<String>,
    /// Seconds to wait for the reply (default 5).
    timeout: Option<f64>,
}

struct CompiledTask {
    target: String,
    line: Template,
    meta: RequestMeta,
    timeout: Duration,
}

/// The protocol: compiles the tasks of a group.
pub struct LineEchoProtocol;

#[async_trait]
impl Protocol for LineEchoProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let tasks = plan
            .tasks()
            .compile::<LineTask>()?
            .into_iter()
            .enumerate()
            .map(|(index, task)| {
                // Core's one rule for seconds: positive, finite, and a Duration can hold it.
                let timeout = task_seconds(index, "timeout", task.timeout.unwrap_or(5.0))?;
                let name = task.name.unwrap_or_else(|| task.target.clone());
                Ok(CompiledTask {
                    meta: RequestMeta::new("LINE", name, format!("tcp://{}", task.target)),
                    target: task.target,
                    line: task.line,
                    timeout,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(LineEchoFactory {
            tasks: tasks.into(),
        }))
    }
}

struct LineEchoFactory {
    tasks: Arc<[CompiledTask]>,
}

impl UserFactory for LineEchoFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(LineEchoUser {
            tasks: self.tasks.clone(),
            connection: None,
        })
    }
}

struct LineEchoUser {
    tasks: Arc<[CompiledTask]>,
    connection: Option<(String, BufReader<TcpStream>)>,
}

struct Reply(String);

impl Response for Reply {
    fn body(&self) -> &[u8] {
        self.0.as_bytes()
    }
    fn length(&self) -> u64 {
        self.0.len() as u64
    }
}

impl LineEchoUser {
    async fn exchange(&mut self, target: &str, line: &str) -> std::io::Result<String> {
        let reuse = matches!(&self.connection, Some((t, _)) if t == target);
        if !reuse {
            let stream = TcpStream::connect(target).await?;
            self.connection = Some((target.to_owned(), BufReader::new(stream)));
        }
        let Some((_, stream)) = self.connection.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        stream.get_mut().write_all(line.as_bytes()).await?;
        stream.get_mut().write_all(b"\n").await?;
        let mut reply = String::new();
        if stream.read_line(&mut reply).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        Ok(reply.trim_end_matches('\n').to_owned())
    }
}

#[async_trait]
impl UserTemplate for LineEchoUser {
    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        let tasks = self.tasks.clone();
        let Some(task) = tasks.get(index) else {
            return;
        };
        let line = task.line.render(ctx.variables()).into_owned();
        // Started through the context: a task cut off by the end of the test is then timed
        // from here too.
        let timer = ctx.start_timer();
        match tokio::time::timeout(task.timeout, self.exchange(&task.target, &line)).await {
            Ok(Ok(reply)) => ctx.record_response(&task.meta, timer, &Reply(reply)),
            Ok(Err(error)) => {
                self.connection = None;
                ctx.record_failure(&task.meta, timer, None, 0, error);
            }
            Err(_) => {
                self.connection = None;
                let secs = task.timeout.as_secs_f64();
                ctx.record_failure(
                    &task.meta,
                    timer,
                    None,
                    0,
                    format!("timed out after {secs}s"),
                );
            }
        }
    }

    async fn on_stop(&mut self, _ctx: &mut UserContext) {
        self.connection = None;
    }
}

register_user! {
    name: "line_echo_user",
    description: "example: newline-delimited request/reply over TCP",
    protocol: LineEchoProtocol,
}

/// Starts a line-echo server on 127.0.0.1 (for the example and its test); returns its address
/// and a counter of lines it answered.
pub async fn start_echo_server(
) -> std::io::Result<(std::net::SocketAddr, Arc<std::sync::atomic::AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = answered.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if write
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    Ok((addr, answered))
}
