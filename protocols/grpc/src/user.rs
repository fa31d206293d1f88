//! One simulated gRPC user: its connections, and one call per task.

use std::error::Error as _;
use std::sync::Arc;

use bytes::Bytes;
use load_density_core::{async_trait, RequestTimer, UserContext, UserTemplate};
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::channel::{ChannelSlot, Endpoint, H2Service};
use crate::codec::BytesCodec;
use crate::error::CallError;
use crate::payload::response_json;
use crate::protocol::Shared;
use crate::response::GrpcResponse;
use crate::task::CompiledTask;

/// A `grpc_user`: one HTTP/2 connection per endpoint (or the group's shared one), opened on
/// first use and re-opened after a transport error.
pub(crate) struct GrpcUser {
    shared: Arc<Shared>,
    slots: Vec<Arc<ChannelSlot>>,
}

impl GrpcUser {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let slots = match &shared.shared_slots {
            Some(slots) => slots.clone(),
            None => shared
                .endpoints
                .iter()
                .map(|_| Arc::new(ChannelSlot::default()))
                .collect(),
        };
        Self { shared, slots }
    }
}

/// What a call got so far; read after a timeout too.
#[derive(Debug, Default)]
struct Progress {
    connected: bool,
    sent: u64,
    received: u64,
    bytes: u64,
    bodies: Vec<Bytes>,
}

/// A call that got a status (from the server, or OK).
struct Finished {
    status: Status,
    metadata: Vec<MetadataMap>,
}

/// Whether a status stands for a broken connection or stream rather than an answer: the
/// error came from HTTP/2 (or the socket) and not from the server's trailers.
fn transport_error(status: &Status) -> Option<String> {
    let mut source = status.source();
    while let Some(error) = source {
        if let Some(h2_error) = error.downcast_ref::<h2::Error>() {
            return Some(h2_error.to_string());
        }
        if error.downcast_ref::<std::io::Error>().is_some() {
            return Some(error.to_string());
        }
        source = error.source();
    }
    None
}

struct Call<'a> {
    task: &'a CompiledTask,
    endpoint: &'a Endpoint,
    slot: &'a ChannelSlot,
    keep_body: bool,
    keep_metadata: bool,
}

impl Call<'_> {
    async fn run(
        &self,
        messages: Vec<Bytes>,
        metadata: MetadataMap,
        timer: RequestTimer,
        ctx: &mut UserContext,
        progress: &mut Progress,
    ) -> Result<Finished, CallError> {
        // A connection found closed before anything was sent is retried once on a new one.
        let mut attempt = 0;
        let (channel, mut grpc) = loop {
            let channel = self.slot.get(self.endpoint, ctx.source_address()).await?;
            progress.connected = true;
            let mut grpc = tonic::client::Grpc::with_origin(
                H2Service(channel.connection.send.clone()),
                self.endpoint.origin.clone(),
            );
            // gzip both ways only when asked: advertising it by default makes servers compress
            // every reply, which costs both sides CPU that a load test should not spend.
            if self.task.gzip {
                grpc = grpc
                    .send_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Gzip);
            }
            match grpc.ready().await {
                Ok(()) => break (channel, grpc),
                Err(error) => {
                    self.slot.discard(&channel).await;
                    attempt += 1;
                    if attempt > 1 {
                        return Err(CallError::NotSent(error.to_string()));
                    }
                }
            }
        };
        progress.sent = messages.len() as u64;
        let mut request = tonic::Request::new(futures_util::stream::iter(messages));
        *request.metadata_mut() = metadata;
        request.set_timeout(self.task.timeout);
        let lost = |status: &Status| transport_error(status).map(CallError::ConnectionLost);

        let response = match grpc
            .streaming(request, self.task.path.clone(), BytesCodec)
            .await
        {
            Ok(response) => response,
            Err(status) => {
                if let Some(error) = lost(&status) {
                    self.slot.discard(&channel).await;
                    return Err(error);
                }
                let metadata = self.metadata_of(&status);
                return Ok(Finished { status, metadata });
            }
        };
        let mut metadata = Vec::new();
        if self.keep_metadata {
            metadata.push(response.metadata().clone());
        }
        let mut stream = response.into_inner();
        let mut message_timer = timer;
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    let length = message.len() as u64;
                    progress.received += 1;
                    progress.bytes += length;
                    if let Some(meta) = &self.task.message_meta {
                        let event = GrpcResponse::new(0, "").with_counts(1, 0, length);
                        ctx.record_response(meta, message_timer, &event);
                        message_timer = RequestTimer::start();
                    }
                    if self.keep_body {
                        progress.bodies.push(message);
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    if let Some(error) = lost(&status) {
                        self.slot.discard(&channel).await;
                        return Err(error);
                    }
                    metadata.extend(self.metadata_of(&status));
                    return Ok(Finished { status, metadata });
                }
            }
        }
        match stream.trailers().await {
            Ok(trailers) => {
                if self.keep_metadata {
                    metadata.extend(trailers);
                }
                Ok(Finished {
                    status: Status::ok(""),
                    metadata,
                })
            }
            Err(status) => {
                if let Some(error) = lost(&status) {
                    self.slot.discard(&channel).await;
                    return Err(error);
                }
                metadata.extend(self.metadata_of(&status));
                Ok(Finished { status, metadata })
            }
        }
    }

    fn metadata_of(&self, status: &Status) -> Vec<MetadataMap> {
        if self.keep_metadata {
            vec![status.metadata().clone()]
        } else {
            Vec::new()
        }
    }
}

#[async_trait]
impl UserTemplate for GrpcUser {
    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        let shared = self.shared.clone();
        let Some(task) = shared.tasks.get(index) else {
            return;
        };
        let timer = RequestTimer::start();
        let messages = match task.render_messages(ctx.variables()) {
            Ok(messages) => messages,
            Err(error) => {
                let error = CallError::Payload(error);
                ctx.record_failure(
                    &task.meta,
                    timer,
                    None,
                    0,
                    format!("{}: {error}", error.code_name()),
                );
                return;
            }
        };
        let metadata = match task.metadata.render(ctx.variables()) {
            Ok(metadata) => metadata,
            Err(key) => {
                let error = CallError::Metadata(key);
                ctx.record_failure(
                    &task.meta,
                    timer,
                    None,
                    0,
                    format!("{}: {error}", error.code_name()),
                );
                return;
            }
        };
        let call = Call {
            task,
            endpoint: &shared.endpoints[task.endpoint],
            slot: &self.slots[task.endpoint],
            keep_body: ctx.needs_body(),
            keep_metadata: ctx.task_checks().is_some(),
        };
        // Per-message events are recorded without the task's assertions and extractors.
        let restore = match (&task.message_meta, &task.checks) {
            (Some(_), Some(checks)) if ctx.task_checks().is_some() => {
                ctx.end_task();
                Some(checks)
            }
            _ => None,
        };
        let mut progress = Progress::default();
        let outcome = tokio::time::timeout(
            task.timeout,
            call.run(messages, metadata, timer, ctx, &mut progress),
        )
        .await;
        if let Some(checks) = restore {
            ctx.begin_task(checks);
        }
        let finished = match outcome {
            Ok(Ok(finished)) => finished,
            Ok(Err(error)) => {
                ctx.record_failure(
                    &task.meta,
                    timer,
                    None,
                    progress.bytes,
                    format!("{}: {error}", error.code_name()),
                );
                return;
            }
            Err(_elapsed) if !progress.connected => {
                ctx.record_failure(
                    &task.meta,
                    timer,
                    None,
                    0,
                    format!(
                        "DEADLINE_EXCEEDED: timed out after {}s connecting to {}",
                        task.timeout.as_secs_f64(),
                        call.endpoint.target.authority
                    ),
                );
                return;
            }
            Err(_elapsed) => Finished {
                status: Status::deadline_exceeded(format!(
                    "timed out after {}s (client deadline)",
                    task.timeout.as_secs_f64()
                )),
                metadata: Vec::new(),
            },
        };
        let mut response =
            GrpcResponse::new(i32::from(finished.status.code()), finished.status.message())
                .with_counts(progress.received, progress.sent, progress.bytes);
        for map in &finished.metadata {
            response = response.with_metadata(map);
        }
        if call.keep_body {
            match response_json(&progress.bodies, &task.output, task.kind.streams_response()) {
                Ok(body) => response = response.with_body(body),
                Err(error) => {
                    ctx.record_failure(
                        &task.meta,
                        timer,
                        None,
                        progress.bytes,
                        format!("INTERNAL: {error}"),
                    );
                    return;
                }
            }
        }
        ctx.record_response(&task.meta, timer, &response);
    }

    async fn on_stop(&mut self, _ctx: &mut UserContext) {
        if self.shared.shared_slots.is_none() {
            for slot in &self.slots {
                slot.close().await;
            }
        }
    }
}
