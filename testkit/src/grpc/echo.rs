//! The `loadtest.Echo` service, implemented over `DynamicMessage` (see `proto/loadtest.proto`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::Incoming;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, Value};
use tonic::codec::CompressionEncoding;
use tonic::metadata::KeyAndValueRef;
use tonic::server::{
    ClientStreamingService, Grpc, ServerStreamingService, StreamingService, UnaryService,
};
use tonic::{Code, Request, Response, Status, Streaming};

use super::codec::BytesCodec;

/// The longest delay a request may ask for.
const MAX_DELAY_MS: i64 = 60_000;
/// The most replies a ServerStream request may ask for.
const MAX_STREAM: i64 = 100_000;

type Reply = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Status>> + Send>>;
type ReplyStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;
type StreamReply = Pin<Box<dyn Future<Output = Result<Response<ReplyStream>, Status>> + Send>>;

/// The message descriptors the service reads and writes.
#[derive(Debug)]
pub(crate) struct Echo {
    echo_request: MessageDescriptor,
    echo_reply: MessageDescriptor,
    stream_request: MessageDescriptor,
    number: MessageDescriptor,
    sum: MessageDescriptor,
    fail_request: MessageDescriptor,
}

fn message(pool: &DescriptorPool, name: &str) -> Result<MessageDescriptor, String> {
    pool.get_message_by_name(name)
        .ok_or_else(|| format!("loadtest.proto has no message {name}"))
}

impl Echo {
    pub(crate) fn new(pool: &DescriptorPool) -> Result<Self, String> {
        Ok(Self {
            echo_request: message(pool, "loadtest.EchoRequest")?,
            echo_reply: message(pool, "loadtest.EchoReply")?,
            stream_request: message(pool, "loadtest.StreamRequest")?,
            number: message(pool, "loadtest.Number")?,
            sum: message(pool, "loadtest.Sum")?,
            fail_request: message(pool, "loadtest.FailRequest")?,
        })
    }
}

fn decode(descriptor: &MessageDescriptor, bytes: Bytes) -> Result<DynamicMessage, Status> {
    DynamicMessage::decode(descriptor.clone(), bytes)
        .map_err(|e| Status::invalid_argument(format!("not a {}: {e}", descriptor.full_name())))
}

fn text(message: &DynamicMessage, field: &str) -> String {
    message
        .get_field_by_name(field)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn int(message: &DynamicMessage, field: &str) -> i64 {
    match message.get_field_by_name(field).as_deref() {
        Some(Value::I32(v)) => i64::from(*v),
        Some(Value::I64(v)) => *v,
        Some(Value::EnumNumber(v)) => i64::from(*v),
        _ => 0,
    }
}

fn delay(ms: i64) -> Option<Duration> {
    u64::try_from(ms.clamp(0, MAX_DELAY_MS))
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

impl Echo {
    /// The reply to one EchoRequest.
    fn reply(
        &self,
        request: &DynamicMessage,
        index: i64,
        metadata: &HashMap<MapKey, Value>,
    ) -> Bytes {
        let mut reply = DynamicMessage::new(self.echo_reply.clone());
        reply.set_field_by_name("message", Value::String(text(request, "message")));
        reply.set_field_by_name("id", Value::I32(int(request, "id") as i32));
        reply.set_field_by_name("index", Value::I32(index as i32));
        reply.set_field_by_name("metadata", Value::Map(metadata.clone()));
        for field in ["mood", "tags", "inner"] {
            if request.has_field_by_name(field) {
                if let Some(value) = request.get_field_by_name(field) {
                    reply.set_field_by_name(field, value.into_owned());
                }
            }
        }
        Bytes::from(reply.encode_to_vec())
    }
}

/// The request's metadata named `x-...`, for the reply.
fn x_metadata<T>(request: &Request<T>) -> HashMap<MapKey, Value> {
    request
        .metadata()
        .iter()
        .filter_map(|entry| match entry {
            KeyAndValueRef::Ascii(key, value) if key.as_str().starts_with("x-") => Some((
                MapKey::String(key.as_str().to_owned()),
                Value::String(value.to_str().unwrap_or_default().to_owned()),
            )),
            _ => None,
        })
        .collect()
}

struct UnaryEcho(Arc<Echo>);

impl UnaryService<Bytes> for UnaryEcho {
    type Response = Bytes;
    type Future = Reply;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let echo = self.0.clone();
        Box::pin(async move {
            let metadata = x_metadata(&request);
            let message = decode(&echo.echo_request, request.into_inner())?;
            if let Some(wait) = delay(int(&message, "delay_ms")) {
                tokio::time::sleep(wait).await;
            }
            Ok(Response::new(echo.reply(&message, 0, &metadata)))
        })
    }
}

struct Fail(Arc<Echo>);

impl UnaryService<Bytes> for Fail {
    type Response = Bytes;
    type Future = Reply;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let echo = self.0.clone();
        Box::pin(async move {
            let message = decode(&echo.fail_request, request.into_inner())?;
            let code = int(&message, "code") as i32;
            if code == 0 {
                return Ok(Response::new(Bytes::new()));
            }
            Err(Status::new(Code::from_i32(code), text(&message, "message")))
        })
    }
}

struct ServerStream(Arc<Echo>);

impl ServerStreamingService<Bytes> for ServerStream {
    type Response = Bytes;
    type ResponseStream = ReplyStream;
    type Future = StreamReply;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let echo = self.0.clone();
        Box::pin(async move {
            let metadata = x_metadata(&request);
            let message = decode(&echo.stream_request, request.into_inner())?;
            let count = int(&message, "count").clamp(0, MAX_STREAM);
            let wait = delay(int(&message, "delay_ms"));
            let stream = futures_util::stream::unfold(0i64, move |index| {
                let echo = echo.clone();
                let message = message.clone();
                let metadata = metadata.clone();
                async move {
                    if index >= count {
                        return None;
                    }
                    if let (Some(wait), true) = (wait, index > 0) {
                        tokio::time::sleep(wait).await;
                    }
                    Some((Ok(echo.reply(&message, index, &metadata)), index + 1))
                }
            });
            Ok(Response::new(Box::pin(stream) as ReplyStream))
        })
    }
}

struct ClientStream(Arc<Echo>);

impl ClientStreamingService<Bytes> for ClientStream {
    type Response = Bytes;
    type Future = Reply;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let echo = self.0.clone();
        Box::pin(async move {
            let mut stream = request.into_inner();
            let (mut total, mut count) = (0i64, 0i32);
            while let Some(bytes) = stream.message().await? {
                let number = decode(&echo.number, bytes)?;
                total = total.wrapping_add(int(&number, "value"));
                count += 1;
            }
            let mut sum = DynamicMessage::new(echo.sum.clone());
            sum.set_field_by_name("total", Value::I64(total));
            sum.set_field_by_name("count", Value::I32(count));
            Ok(Response::new(Bytes::from(sum.encode_to_vec())))
        })
    }
}

struct Bidi(Arc<Echo>);

impl StreamingService<Bytes> for Bidi {
    type Response = Bytes;
    type ResponseStream = ReplyStream;
    type Future = StreamReply;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let echo = self.0.clone();
        Box::pin(async move {
            let metadata = x_metadata(&request);
            let stream = request.into_inner().enumerate().map(move |(index, item)| {
                let message = decode(&echo.echo_request, item?)?;
                Ok(echo.reply(&message, index as i64, &metadata))
            });
            Ok(Response::new(Box::pin(stream) as ReplyStream))
        })
    }
}

/// Serves one call to `/loadtest.Echo/{method}`.
pub(crate) async fn handle(
    echo: Arc<Echo>,
    method: &str,
    request: http::Request<Incoming>,
) -> http::Response<tonic::body::Body> {
    let mut grpc = Grpc::new(BytesCodec)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    match method {
        "Unary" => grpc.unary(UnaryEcho(echo), request).await,
        "Fail" => grpc.unary(Fail(echo), request).await,
        "ServerStream" => grpc.server_streaming(ServerStream(echo), request).await,
        "ClientStream" => grpc.client_streaming(ClientStream(echo), request).await,
        "Bidi" => grpc.streaming(Bidi(echo), request).await,
        other => {
            Status::unimplemented(format!("loadtest.Echo has no method {other:?}")).into_http()
        }
    }
}
