//! The socket of one MQTT connection: opening it (TCP, TLS, `CONNECT`/`CONNACK`), and the
//! task that drives it afterwards.
//!
//! Memory is spent only while bytes move: the read buffer is empty (unallocated) between
//! packets and grows to the size of the packet being read, which is checked against
//! `max_packet_size` from its fixed header before anything is reserved for it; outgoing packets
//! are encoded into a small reused buffer; the requests waiting for an acknowledgement are a
//! short vec (a user waits for each of its requests), not tables sized for 65,535 packet ids.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use load_density_core::stream::MaybeTlsStream as Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::codes::Code;
use crate::error::MqttError;
use crate::session::{ConnectParams, ProtocolVersion, Request, Shared};
use crate::wire::{self, Incoming, Outgoing};

/// Bytes read per call while no packet is known to need more (copied from the stack into the
/// read buffer, so an idle connection holds no read buffer at all).
const CHUNK: usize = 4096;
/// A write buffer larger than this is given back after use; smaller ones are kept.
const WRITE_KEEP: usize = 512;
/// Requests waiting for an acknowledgement at most (a user waits for each; more are requests
/// whose task timed out, forgotten first when the table is full).
const MAX_INFLIGHT: usize = 16;
/// The longest a closing connection waits to shut its stream down (a TLS `close_notify`).
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(1);

type Reply = tokio::sync::oneshot::Sender<Result<Option<u8>, MqttError>>;

/// Reads what is available into `buffer`: straight into its spare room when a packet being
/// read has room reserved, else through a chunk on the stack (so a connection waiting for
/// bytes holds no buffer). Cancel-safe: bytes are only taken when the read completes.
async fn read_some(stream: &mut Stream, buffer: &mut BytesMut) -> io::Result<usize> {
    if buffer.capacity() - buffer.len() >= CHUNK {
        return stream.read_buf(buffer).await;
    }
    std::future::poll_fn(|cx| {
        let mut chunk = [0u8; CHUNK];
        let mut read = ReadBuf::new(&mut chunk);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                buffer.extend_from_slice(read.filled());
                Poll::Ready(Ok(read.filled().len()))
            }
        }
    })
    .await
}

fn connect_error(refused: Option<Code>, reason: String) -> MqttError {
    match refused {
        Some((code, reason)) => MqttError::Refused { code, reason },
        None => MqttError::Connect(reason),
    }
}

/// An open connection, past its `CONNACK`.
pub(crate) struct Opened {
    pub(crate) stream: Stream,
    /// Bytes read after the `CONNACK`.
    pub(crate) leftover: BytesMut,
    /// The keep-alive the broker asked for (MQTT 5 `server_keep_alive`), if any.
    pub(crate) server_keep_alive: Option<u16>,
}

/// Opens the TCP (and TLS) connection, sends `CONNECT` and waits for a successful `CONNACK`
/// (the caller bounds the time).
pub(crate) async fn open(params: &ConnectParams) -> Result<Opened, MqttError> {
    let host = params.broker.host.as_str();
    let tcp =
        load_density_core::source_address::connect_host(host, params.broker.port, params.source)
            .await
            .map_err(|e| MqttError::Connect(e.to_string()))?;
    // Requests are single small packets: send each at once.
    tcp.set_nodelay(true)
        .map_err(|e| MqttError::Connect(e.to_string()))?;
    let mut stream = if params.broker.tls {
        Stream::tls(params.tls.clone(), host, tcp)
            .await
            .map_err(|e| MqttError::Connect(format!("TLS: {e}")))?
    } else {
        Stream::Plain(tcp)
    };
    let max = params.max_packet_size;
    let mut out = BytesMut::new();
    let connect = Outgoing::Connect {
        client_id: &params.client_id,
        keep_alive: u16::try_from(params.keepalive.as_secs()).unwrap_or(u16::MAX),
        clean_session: params.clean_session,
        credentials: params.credentials.as_ref(),
        max_packet_size: max,
    };
    wire::write(params.version, connect, &mut out, max)
        .map_err(|e| MqttError::Connect(format!("CONNECT: {e}")))?;
    let io_error = |e: io::Error| MqttError::Connect(e.to_string());
    stream.write_all(&out).await.map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;
    let mut leftover = BytesMut::new();
    loop {
        if let Some(packet) = wire::read(params.version, &mut leftover, max)
            .map_err(|e| MqttError::Connect(e.to_string()))?
        {
            return match packet {
                Incoming::ConnAck(Ok(()), server_keep_alive) => Ok(Opened {
                    stream,
                    leftover: if leftover.is_empty() {
                        BytesMut::new()
                    } else {
                        leftover
                    },
                    server_keep_alive,
                }),
                Incoming::ConnAck(Err(code), _) => Err(connect_error(Some(code), String::new())),
                Incoming::Disconnect(reason) => Err(MqttError::Connect(reason)),
                other => Err(MqttError::Connect(format!(
                    "expected CONNACK from the broker, got {}",
                    packet_name(&other)
                ))),
            };
        }
        if read_some(&mut stream, &mut leftover)
            .await
            .map_err(io_error)?
            == 0
        {
            return Err(MqttError::Connect("closed by the broker".to_owned()));
        }
    }
}

fn packet_name(packet: &Incoming) -> &'static str {
    match packet {
        Incoming::ConnAck(..) => "CONNACK",
        Incoming::PubAck(..) => "PUBACK",
        Incoming::PubRec(..) => "PUBREC",
        Incoming::PubRel(..) => "PUBREL",
        Incoming::PubComp(..) => "PUBCOMP",
        Incoming::SubAck(..) => "SUBACK",
        Incoming::UnsubAck(..) => "UNSUBACK",
        Incoming::Publish { .. } => "PUBLISH",
        Incoming::PingResp => "PINGRESP",
        Incoming::Disconnect(_) => "DISCONNECT",
        Incoming::Other => "an unexpected packet",
    }
}

/// The acknowledgement a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaits {
    PubAck,
    PubComp,
    SubAck,
    UnsubAck,
}

struct Inflight {
    pkid: u16,
    ack: Awaits,
    reply: Reply,
}

/// Drives one connection: writes the user's requests, reads the broker's packets, answers
/// them (acks of incoming messages, `PUBREL`, `PINGREQ`) and completes the user's waiters.
pub(crate) struct Driver {
    stream: Stream,
    version: ProtocolVersion,
    max: usize,
    shared: Arc<Shared>,
    read: BytesMut,
    write: BytesMut,
    /// Waiters completed once the write buffer is on the wire (QoS 0 publishes, DISCONNECT).
    on_written: Vec<Reply>,
    inflight: Vec<Inflight>,
    next_pkid: u16,
    keepalive: Option<Duration>,
    ping_pending: bool,
}

/// How the driver's loop ended.
enum End {
    /// The user sent DISCONNECT.
    Disconnected,
    /// The connection broke, for this reason.
    Lost(String),
}

impl Driver {
    pub(crate) fn new(
        opened: Opened,
        version: ProtocolVersion,
        max: usize,
        keepalive: Duration,
        shared: Arc<Shared>,
    ) -> Self {
        let keepalive = match opened.server_keep_alive {
            Some(secs) => Duration::from_secs(u64::from(secs)),
            None => keepalive,
        };
        Self {
            stream: opened.stream,
            version,
            max,
            shared,
            read: opened.leftover,
            write: BytesMut::new(),
            on_written: Vec::new(),
            inflight: Vec::new(),
            next_pkid: 1,
            keepalive: (!keepalive.is_zero()).then_some(keepalive),
            ping_pending: false,
        }
    }

    /// Runs until the connection ends or the user disconnects; then fails every waiter left.
    pub(crate) async fn run(mut self) {
        let end = match self.serve().await {
            Ok(()) => End::Disconnected,
            Err(reason) => End::Lost(reason),
        };
        if matches!(end, End::Disconnected) {
            let _ = tokio::time::timeout(SHUTDOWN_LIMIT, self.stream.shutdown()).await;
        }
        let waiters = self
            .on_written
            .drain(..)
            .chain(self.inflight.drain(..).map(|i| i.reply));
        match end {
            End::Disconnected => self.shared.close(None, waiters),
            End::Lost(reason) => self.shared.close(Some(reason), waiters),
        }
    }

    async fn serve(&mut self) -> Result<(), String> {
        // Far enough never to fire when keep-alive is off (and within tokio's timer range).
        let idle = self.keepalive.unwrap_or(Duration::from_secs(86_400 * 365));
        let ping = tokio::time::sleep(idle);
        tokio::pin!(ping);
        // Anything already read with the CONNACK.
        self.on_bytes()?;
        loop {
            let mut disconnect = false;
            for request in self.shared.take_requests() {
                disconnect |= self.encode(request);
            }
            if !self.write.is_empty() {
                self.flush().await?;
                ping.as_mut().reset(Instant::now() + idle);
            }
            if disconnect {
                return Ok(());
            }
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                read = read_some(&mut self.stream, &mut self.read) => {
                    match read {
                        Ok(0) => return Err("closed by the broker".to_owned()),
                        Ok(_) => self.on_bytes()?,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                _ = &mut ping, if self.keepalive.is_some() => {
                    if self.ping_pending {
                        return Err("no PINGRESP from the broker".to_owned());
                    }
                    self.ping_pending = true;
                    self.push(Outgoing::PingReq)?;
                    self.flush().await?;
                    ping.as_mut().reset(Instant::now() + idle);
                }
            }
        }
    }

    /// Encodes a packet the connection itself sends (acks, pings): an error ends the
    /// connection.
    fn push(&mut self, packet: Outgoing<'_>) -> Result<(), String> {
        wire::write(self.version, packet, &mut self.write, self.max).map_err(|e| e.to_string())
    }

    /// Writes the write buffer out, then completes the waiters that only wanted that.
    async fn flush(&mut self) -> Result<(), String> {
        let written = async {
            self.stream.write_all(&self.write).await?;
            self.stream.flush().await
        }
        .await;
        written.map_err(|e| format!("writing to the broker: {e}"))?;
        if self.write.capacity() > WRITE_KEEP {
            self.write = BytesMut::new();
        } else {
            self.write.clear();
        }
        for reply in self.on_written.drain(..) {
            let _ = reply.send(Ok(None));
        }
        Ok(())
    }

    fn next_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.iter().any(|i| i.pkid == pkid) {
                return pkid;
            }
        }
    }

    /// Room for one more waiter, forgetting requests whose task gave up waiting if needed.
    fn has_room(&mut self) -> bool {
        if self.inflight.len() >= MAX_INFLIGHT {
            self.inflight.retain(|i| !i.reply.is_closed());
        }
        self.inflight.len() < MAX_INFLIGHT
    }

    /// Encodes `packet` into the write buffer and gives `reply` back; when it cannot be
    /// encoded (over the packet size cap), answers `reply` with why and gives `None`.
    fn write_or_answer(&mut self, packet: Outgoing<'_>, reply: Reply) -> Option<Reply> {
        match wire::write(self.version, packet, &mut self.write, self.max) {
            Ok(()) => Some(reply),
            Err(e) => {
                let _ = reply.send(Err(MqttError::Busy(e.to_string())));
                None
            }
        }
    }

    /// Encodes one request of the user; `true` for DISCONNECT.
    fn encode(&mut self, request: Request) -> bool {
        let (ack, reply) = match request {
            Request::Disconnect { reply } => {
                if let Some(reply) = self.write_or_answer(Outgoing::Disconnect, reply) {
                    self.on_written.push(reply);
                }
                return true;
            }
            Request::Publish {
                topic,
                qos,
                retain,
                payload,
                reply,
            } => {
                if qos > 0 && !self.has_room() {
                    let _ = reply.send(Err(busy()));
                    return false;
                }
                let pkid = if qos > 0 { self.next_pkid() } else { 0 };
                let packet = Outgoing::Publish {
                    topic: &topic,
                    qos,
                    retain,
                    pkid,
                    payload,
                };
                let Some(reply) = self.write_or_answer(packet, reply) else {
                    return false;
                };
                match qos {
                    0 => {
                        self.on_written.push(reply);
                        return false;
                    }
                    1 => ((pkid, Awaits::PubAck), reply),
                    _ => ((pkid, Awaits::PubComp), reply),
                }
            }
            Request::Subscribe { filter, qos, reply } => {
                if !self.has_room() {
                    let _ = reply.send(Err(busy()));
                    return false;
                }
                let pkid = self.next_pkid();
                let packet = Outgoing::Subscribe {
                    pkid,
                    filter: &filter,
                    qos,
                };
                let Some(reply) = self.write_or_answer(packet, reply) else {
                    return false;
                };
                ((pkid, Awaits::SubAck), reply)
            }
            Request::Unsubscribe { filter, reply } => {
                if !self.has_room() {
                    let _ = reply.send(Err(busy()));
                    return false;
                }
                let pkid = self.next_pkid();
                let packet = Outgoing::Unsubscribe {
                    pkid,
                    filter: &filter,
                };
                let Some(reply) = self.write_or_answer(packet, reply) else {
                    return false;
                };
                ((pkid, Awaits::UnsubAck), reply)
            }
        };
        let (pkid, ack) = ack;
        self.inflight.push(Inflight { pkid, ack, reply });
        false
    }

    /// Handles every whole packet in the read buffer, then gives the buffer back if empty.
    fn on_bytes(&mut self) -> Result<(), String> {
        while let Some(packet) =
            wire::read(self.version, &mut self.read, self.max).map_err(|e| e.to_string())?
        {
            self.on_packet(packet)?;
        }
        if self.read.is_empty() {
            // Received payloads keep their own part of the old allocation alive.
            self.read = BytesMut::new();
        }
        Ok(())
    }

    fn complete(&mut self, pkid: u16, ack: Awaits, packet: &'static str, result: Result<u8, Code>) {
        let Some(index) = self
            .inflight
            .iter()
            .position(|i| i.pkid == pkid && i.ack == ack)
        else {
            return;
        };
        let waiter = self.inflight.swap_remove(index);
        let outcome = result
            .map(Some)
            .map_err(|(code, reason)| MqttError::Rejected {
                packet,
                code,
                reason,
            });
        let _ = waiter.reply.send(outcome);
    }

    fn on_packet(&mut self, packet: Incoming) -> Result<(), String> {
        match packet {
            Incoming::PubAck(pkid, result) => self.complete(pkid, Awaits::PubAck, "PUBACK", result),
            Incoming::PubRec(pkid, Ok(_)) => self.push(Outgoing::PubRel(pkid))?,
            Incoming::PubRec(pkid, Err(code)) => {
                self.complete(pkid, Awaits::PubComp, "PUBREC", Err(code))
            }
            Incoming::PubComp(pkid, result) => {
                self.complete(pkid, Awaits::PubComp, "PUBCOMP", result)
            }
            Incoming::SubAck(pkid, result) => self.complete(pkid, Awaits::SubAck, "SUBACK", result),
            Incoming::UnsubAck(pkid, result) => {
                self.complete(pkid, Awaits::UnsubAck, "UNSUBACK", result)
            }
            Incoming::PubRel(pkid) => self.push(Outgoing::PubComp(pkid))?,
            Incoming::Publish {
                topic,
                payload,
                qos,
                pkid,
            } => {
                match qos {
                    0 => {}
                    1 => self.push(Outgoing::PubAck(pkid))?,
                    _ => self.push(Outgoing::PubRec(pkid))?,
                }
                self.shared.on_publish(topic, payload);
            }
            Incoming::PingResp => self.ping_pending = false,
            Incoming::Disconnect(reason) => return Err(reason),
            Incoming::ConnAck(..) | Incoming::Other => {}
        }
        Ok(())
    }
}

fn busy() -> MqttError {
    MqttError::Busy(format!(
        "{MAX_INFLIGHT} requests still wait for their acknowledgement"
    ))
}
