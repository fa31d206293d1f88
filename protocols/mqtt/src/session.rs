//! One MQTT connection of one user: the rumqttc client, its event loop in a tokio task of its
//! own, and the state the two share.
//!
//! The user sends requests through the rumqttc client and waits on a oneshot channel per
//! request. The event-loop task polls rumqttc and never waits on the user: it completes waiters
//! (acks matched by packet id), buffers incoming messages in bounded queues (dropping the oldest
//! when full) and wakes the user. rumqttc hands packet ids out in request order and reports each
//! request as an `Outgoing` event once written, so a FIFO of waiters pairs each request with its
//! packet id.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use rumqttc::Outgoing;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::codes::{self, Code};
use crate::error::MqttError;
use crate::stamp;

/// Capacity of the rumqttc request channel. A user queues one request and waits for it (a
/// `DISCONNECT` may follow a request that timed out), so a few slots are enough; a full channel
/// is a failed request (`Busy`), never a wait.
const REQUEST_CAPACITY: usize = 8;
/// rumqttc's in-flight limit for a connection whose tasks publish or subscribe at QoS 1 or 2.
/// rumqttc keeps a table of this many outgoing messages per connection (its default, 100,
/// costs ~10 KiB a connection); a user waits for each acknowledgement before its next task, so
/// a few are enough (more cover acknowledgements still owed by tasks that timed out).
const INFLIGHT_ACKED: u16 = 8;
/// Incoming messages kept for `receive` per connection (the oldest are dropped past it).
pub const MESSAGE_BUFFER: usize = 1024;
/// Receipts of stamped messages kept per connection until the user records them; past it the
/// oldest are dropped and counted in [`StampedStats::unrecorded`](crate::StampedStats::unrecorded).
pub const RECEIPT_BUFFER: usize = 65_536;
/// rumqttc's in-flight limit for a group whose tasks use these QoS levels: 1 (the least
/// rumqttc takes) when every task is QoS 0, which uses no packet ids for messages, else
/// [`INFLIGHT_ACKED`].
pub(crate) fn inflight_for(qos: impl IntoIterator<Item = u8>) -> u16 {
    if qos.into_iter().any(|q| q > 0) {
        INFLIGHT_ACKED
    } else {
        1
    }
}

/// The largest MQTT packet the protocol can express: a larger `max_packet_size` is lowered to it.
pub(crate) const MQTT_PACKET_LIMIT: usize = 268_435_455;

/// The MQTT protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (`protocol_version: 4`), the default.
    #[default]
    V311,
    /// MQTT 5 (`protocol_version: 5`).
    V5,
}

/// What a new connection needs.
pub(crate) struct ConnectParams {
    pub(crate) broker: Broker,
    pub(crate) client_id: String,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) keepalive: Duration,
    pub(crate) clean_session: bool,
    pub(crate) version: ProtocolVersion,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) timeout: Duration,
    pub(crate) buffer_messages: bool,
    /// The largest packet sent or accepted (the group's `max_packet_size`); a larger incoming
    /// one ends the connection with an error.
    pub(crate) max_packet_size: usize,
    /// rumqttc's in-flight limit ([`inflight_for`]).
    pub(crate) inflight: u16,
}

/// A message received on a subscription.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) topic: String,
    /// The payload without its stamp header.
    pub(crate) body: Bytes,
    /// Payload bytes on the wire.
    pub(crate) wire_len: usize,
}

/// The receipt of a stamped message, to record as an `MQTT_RECV` event. Timed when the
/// event-loop task got the PUBLISH, whenever the user records it.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    pub(crate) topic: Arc<str>,
    pub(crate) wire_len: usize,
    /// The publisher's send time, from the stamp.
    pub(crate) sent: SystemTime,
    /// From `sent` to the arrival (wall clocks), zero when the arrival looks earlier.
    pub(crate) latency: Duration,
}

type Reply = oneshot::Sender<Result<Option<u8>, MqttError>>;

/// A request queued on the connection, waiting for its acknowledgement.
pub(crate) struct Pending {
    receiver: oneshot::Receiver<Result<Option<u8>, MqttError>>,
    what: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Publish(u8),
    Subscribe,
    Unsubscribe,
    Disconnect,
}

struct Waiter {
    expect: Expect,
    reply: Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AckKey {
    PubAck(u16),
    PubComp(u16),
    SubAck(u16),
    UnsubAck(u16),
}

/// An incoming packet, version-independent.
enum Note {
    PubAck(u16, Result<u8, Code>),
    PubRecFailed(u16, Code),
    PubComp(u16, Result<u8, Code>),
    SubAck(u16, Result<u8, Code>),
    UnsubAck(u16, Result<u8, Code>),
    Publish(String, Bytes),
}

#[derive(Default)]
struct State {
    sent: VecDeque<Waiter>,
    collided: Option<(u16, Waiter)>,
    acks: HashMap<AckKey, Waiter>,
    messages: VecDeque<Message>,
    receipts: VecDeque<Receipt>,
    closed: Option<String>,
    loss_reported: bool,
}

struct Shared {
    state: Mutex<State>,
    activity: Notify,
    buffer_messages: bool,
}

impl Shared {
    fn pop_sent(state: &mut State, wanted: fn(Expect) -> bool) -> Option<Waiter> {
        let position = state.sent.iter().position(|w| wanted(w.expect))?;
        state.sent.remove(position)
    }

    fn on_outgoing(&self, outgoing: &Outgoing) {
        let mut state = self.state.lock();
        match *outgoing {
            Outgoing::Publish(pkid) => {
                if state.collided.as_ref().is_some_and(|(p, _)| *p == pkid) {
                    if let Some((_, waiter)) = state.collided.take() {
                        Self::await_publish_ack(&mut state, pkid, waiter);
                    }
                    return;
                }
                if let Some(waiter) =
                    Self::pop_sent(&mut state, |e| matches!(e, Expect::Publish(_)))
                {
                    Self::await_publish_ack(&mut state, pkid, waiter);
                }
            }
            Outgoing::AwaitAck(pkid) => {
                if let Some(waiter) =
                    Self::pop_sent(&mut state, |e| matches!(e, Expect::Publish(_)))
                {
                    state.collided = Some((pkid, waiter));
                }
            }
            Outgoing::Subscribe(pkid) => {
                if let Some(waiter) = Self::pop_sent(&mut state, |e| e == Expect::Subscribe) {
                    state.acks.insert(AckKey::SubAck(pkid), waiter);
                }
            }
            Outgoing::Unsubscribe(pkid) => {
                if let Some(waiter) = Self::pop_sent(&mut state, |e| e == Expect::Unsubscribe) {
                    state.acks.insert(AckKey::UnsubAck(pkid), waiter);
                }
            }
            Outgoing::Disconnect => {
                if let Some(waiter) = Self::pop_sent(&mut state, |e| e == Expect::Disconnect) {
                    let _ = waiter.reply.send(Ok(None));
                }
            }
            _ => {}
        }
    }

    fn await_publish_ack(state: &mut State, pkid: u16, waiter: Waiter) {
        match waiter.expect {
            Expect::Publish(1) => {
                state.acks.insert(AckKey::PubAck(pkid), waiter);
            }
            Expect::Publish(2) => {
                state.acks.insert(AckKey::PubComp(pkid), waiter);
            }
            // QoS 0: written is done.
            _ => {
                let _ = waiter.reply.send(Ok(None));
            }
        }
    }

    fn complete(&self, key: AckKey, packet: &'static str, result: Result<u8, Code>) {
        let waiter = self.state.lock().acks.remove(&key);
        if let Some(waiter) = waiter {
            let outcome = result
                .map(Some)
                .map_err(|(code, reason)| MqttError::Rejected {
                    packet,
                    code,
                    reason,
                });
            let _ = waiter.reply.send(outcome);
        }
    }

    fn on_note(&self, note: Note) {
        match note {
            Note::PubAck(pkid, result) => self.complete(AckKey::PubAck(pkid), "PUBACK", result),
            Note::PubRecFailed(pkid, code) => {
                self.complete(AckKey::PubComp(pkid), "PUBREC", Err(code))
            }
            Note::PubComp(pkid, result) => self.complete(AckKey::PubComp(pkid), "PUBCOMP", result),
            Note::SubAck(pkid, result) => self.complete(AckKey::SubAck(pkid), "SUBACK", result),
            Note::UnsubAck(pkid, result) => {
                self.complete(AckKey::UnsubAck(pkid), "UNSUBACK", result)
            }
            Note::Publish(topic, payload) => self.on_publish(topic, payload),
        }
    }

    fn on_publish(&self, topic: String, payload: Bytes) {
        // The arrival: the event-loop task got the PUBLISH from rumqttc just now.
        let arrived = SystemTime::now();
        let wire_len = payload.len();
        let (receipt, body) = match stamp::decode(&payload) {
            Some((stamp, body)) => {
                stamp::received(stamp.id);
                let (sent, latency) = stamp.latency(arrived);
                let receipt = Receipt {
                    topic: Arc::from(topic.as_str()),
                    wire_len,
                    sent,
                    latency,
                };
                (Some(receipt), body)
            }
            None => (None, payload),
        };
        if receipt.is_none() && !self.buffer_messages {
            return;
        }
        {
            let mut state = self.state.lock();
            if let Some(receipt) = receipt {
                if state.receipts.len() >= RECEIPT_BUFFER {
                    state.receipts.pop_front();
                    stamp::unrecorded(1);
                }
                state.receipts.push_back(receipt);
            }
            if self.buffer_messages {
                if state.messages.len() >= MESSAGE_BUFFER {
                    state.messages.pop_front();
                }
                state.messages.push_back(Message {
                    topic,
                    body,
                    wire_len,
                });
            }
        }
        self.activity.notify_one();
    }

    /// The connection ended: every waiter fails with `reason`.
    fn close(&self, reason: String) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let mut told = false;
        let waiters: Vec<Waiter> = state
            .sent
            .drain(..)
            .chain(state.collided.take().map(|(_, w)| w))
            .chain(state.acks.drain().map(|(_, w)| w))
            .collect();
        for waiter in waiters {
            told |= waiter
                .reply
                .send(Err(MqttError::ConnectionLost(reason.clone())))
                .is_ok();
        }
        state.loss_reported = told;
        state.closed = Some(reason);
        self.activity.notify_one();
    }
}

enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// One live (or lost) connection.
pub(crate) struct Session {
    client: Client,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    subscriptions: HashSet<String>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn qos_v311(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos_v5(qos: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn connection_secs(timeout: Duration) -> u64 {
    timeout.as_secs_f64().ceil().max(1.0) as u64
}

impl Session {
    /// Connects and waits for a successful CONNACK, at most `params.timeout`.
    pub(crate) async fn connect(params: &ConnectParams) -> Result<Session, MqttError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            activity: Notify::new(),
            buffer_messages: params.buffer_messages,
        });
        let (connack_tx, connack_rx) = oneshot::channel();
        let transport = if params.broker.tls {
            rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
                params.tls.clone(),
            ))
        } else {
            rumqttc::Transport::tcp()
        };
        let host = params.broker.host.clone();
        let (client, task) = match params.version {
            ProtocolVersion::V311 => {
                let mut options =
                    rumqttc::MqttOptions::new(params.client_id.clone(), host, params.broker.port);
                options
                    .set_keep_alive(params.keepalive)
                    .set_clean_session(params.clean_session)
                    .set_max_packet_size(params.max_packet_size, params.max_packet_size)
                    .set_inflight(params.inflight.max(1))
                    .set_transport(transport);
                if let Some((username, password)) = &params.credentials {
                    options.set_credentials(username.clone(), password.clone());
                }
                let (client, mut eventloop) = rumqttc::AsyncClient::new(options, REQUEST_CAPACITY);
                let mut network = eventloop.network_options();
                network.set_connection_timeout(connection_secs(params.timeout));
                network.set_tcp_nodelay(true);
                eventloop.set_network_options(network);
                let task = tokio::spawn(drive_v311(eventloop, shared.clone(), connack_tx));
                (Client::V311(client), task)
            }
            ProtocolVersion::V5 => {
                let mut options = rumqttc::v5::MqttOptions::new(
                    params.client_id.clone(),
                    host,
                    params.broker.port,
                );
                options
                    .set_keep_alive(params.keepalive)
                    .set_clean_start(params.clean_session)
                    .set_max_packet_size(Some(
                        u32::try_from(params.max_packet_size).unwrap_or(u32::MAX),
                    ))
                    .set_connection_timeout(connection_secs(params.timeout))
                    .set_outgoing_inflight_upper_limit(params.inflight.max(1))
                    .set_transport(transport);
                if let Some((username, password)) = &params.credentials {
                    options.set_credentials(username.clone(), password.clone());
                }
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, REQUEST_CAPACITY);
                let task = tokio::spawn(drive_v5(eventloop, shared.clone(), connack_tx));
                (Client::V5(client), task)
            }
        };
        let session = Session {
            client,
            shared,
            task,
            subscriptions: HashSet::new(),
        };
        match tokio::time::timeout(params.timeout, connack_rx).await {
            Err(_) => Err(MqttError::timeout("CONNACK", params.timeout)),
            Ok(Err(_)) => Err(MqttError::Connect("the event loop ended".to_owned())),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Ok(Ok(()))) => Ok(session),
        }
    }

    /// Why the connection ended, if it did.
    pub(crate) fn closed(&self) -> Option<String> {
        self.shared.state.lock().closed.clone()
    }

    /// The reason the connection ended, once, when no task has been told yet.
    pub(crate) fn take_unreported_loss(&self) -> Option<String> {
        let mut state = self.shared.state.lock();
        if state.loss_reported {
            return None;
        }
        let reason = state.closed.clone()?;
        state.loss_reported = true;
        Some(reason)
    }

    fn mark_loss_reported(&self) {
        self.shared.state.lock().loss_reported = true;
    }

    /// Queues a request with its waiter, atomically with respect to the event loop.
    fn submit(
        &self,
        expect: Expect,
        send: impl FnOnce(&Client) -> Result<(), String>,
    ) -> Result<oneshot::Receiver<Result<Option<u8>, MqttError>>, MqttError> {
        let (reply, receiver) = oneshot::channel();
        let mut state = self.shared.state.lock();
        if let Some(reason) = state.closed.clone() {
            state.loss_reported = true;
            return Err(MqttError::ConnectionLost(reason));
        }
        state.sent.push_back(Waiter { expect, reply });
        if let Err(message) = send(&self.client) {
            state.sent.pop_back();
            return Err(MqttError::Busy(message));
        }
        Ok(receiver)
    }

    async fn wait(
        &self,
        receiver: oneshot::Receiver<Result<Option<u8>, MqttError>>,
        what: &str,
        limit: Duration,
    ) -> Result<Option<u8>, MqttError> {
        let outcome = match tokio::time::timeout(limit, receiver).await {
            Err(_) => Err(MqttError::timeout(what, limit)),
            Ok(Err(_)) => Err(MqttError::ConnectionLost("the event loop ended".to_owned())),
            Ok(Ok(outcome)) => outcome,
        };
        if matches!(outcome, Err(MqttError::ConnectionLost(_))) {
            self.mark_loss_reported();
        }
        outcome
    }

    /// Queues a PUBLISH; [`Session::finish`] waits for its PUBACK (QoS 1), PUBCOMP (QoS 2) or
    /// its write (QoS 0). An error here means the PUBLISH never reached the connection.
    pub(crate) fn publish(
        &self,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: Bytes,
    ) -> Result<Pending, MqttError> {
        let receiver = self.submit(Expect::Publish(qos), |client| match client {
            Client::V311(c) => c
                .try_publish(topic, qos_v311(qos), retain, Vec::from(payload))
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_publish(topic, qos_v5(qos), retain, payload)
                .map_err(|e| e.to_string()),
        })?;
        let what = match qos {
            0 => "the PUBLISH to be written",
            1 => "PUBACK",
            _ => "PUBCOMP",
        };
        Ok(Pending { receiver, what })
    }

    /// Waits for a queued request's acknowledgement, at most `limit`.
    pub(crate) async fn finish(
        &self,
        pending: Pending,
        limit: Duration,
    ) -> Result<Option<u8>, MqttError> {
        self.wait(pending.receiver, pending.what, limit).await
    }

    /// Subscribes and waits for SUBACK; returns the granted QoS.
    pub(crate) async fn subscribe(
        &mut self,
        filter: &str,
        qos: u8,
        limit: Duration,
    ) -> Result<u8, MqttError> {
        let receiver = self.submit(Expect::Subscribe, |client| match client {
            Client::V311(c) => c
                .try_subscribe(filter, qos_v311(qos))
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe(filter, qos_v5(qos))
                .map_err(|e| e.to_string()),
        })?;
        let granted = self.wait(receiver, "SUBACK", limit).await?.unwrap_or(qos);
        self.subscriptions.insert(filter.to_owned());
        Ok(granted)
    }

    /// Unsubscribes and waits for UNSUBACK.
    pub(crate) async fn unsubscribe(
        &mut self,
        filter: &str,
        limit: Duration,
    ) -> Result<Option<u8>, MqttError> {
        let receiver = self.submit(Expect::Unsubscribe, |client| match client {
            Client::V311(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
            Client::V5(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
        })?;
        let code = self.wait(receiver, "UNSUBACK", limit).await?;
        self.subscriptions.remove(filter);
        Ok(code)
    }

    /// Sends DISCONNECT and waits until it is written (at most `limit`).
    pub(crate) async fn disconnect(&self, limit: Duration) -> Result<(), MqttError> {
        let receiver = self.submit(Expect::Disconnect, |client| match client {
            Client::V311(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        })?;
        self.wait(receiver, "the DISCONNECT to be written", limit)
            .await
            .map(|_| ())
    }

    /// Whether this connection's subscriptions cover `filter`: it subscribed to exactly this
    /// filter, or `filter` is a plain topic that one of its filters matches.
    pub(crate) fn is_subscribed(&self, filter: &str) -> bool {
        self.subscriptions.contains(filter)
            || (!rumqttc::has_wildcards(filter)
                && self
                    .subscriptions
                    .iter()
                    .any(|f| rumqttc::matches(filter, f)))
    }

    /// Takes the receipts of stamped messages received so far.
    pub(crate) fn take_receipts(&self) -> VecDeque<Receipt> {
        std::mem::take(&mut self.shared.state.lock().receipts)
    }

    /// Takes the oldest buffered message whose topic matches `filter` (any topic without one)
    /// and whose body contains `expect`; matching messages without it are dropped.
    pub(crate) fn take_message(
        &self,
        filter: Option<&str>,
        expect: Option<&[u8]>,
    ) -> Option<Message> {
        let mut state = self.shared.state.lock();
        let mut index = 0;
        while index < state.messages.len() {
            let on_topic = filter.is_none_or(|f| rumqttc::matches(&state.messages[index].topic, f));
            if !on_topic {
                index += 1;
                continue;
            }
            let message = state.messages.remove(index)?;
            if expect.is_none_or(|e| contains(&message.body, e)) {
                return Some(message);
            }
        }
        None
    }

    /// Resolves when a message arrives or the connection ends (or at once if that happened
    /// since the last call).
    pub(crate) async fn activity(&self) {
        self.shared.activity.notified().await
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn io_reason(error: &std::io::Error) -> String {
    error.to_string()
}

fn v311_reason(error: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectionError as E, StateError as S};
    match error {
        E::Io(e) | E::MqttState(S::Io(e)) => io_reason(e),
        E::Tls(rumqttc::TlsError::Io(e)) => format!("TLS: {}", io_reason(e)),
        E::Tls(e) => format!("TLS: {e}"),
        E::NetworkTimeout => "timed out connecting".to_owned(),
        E::FlushTimeout => "timed out writing to the broker".to_owned(),
        E::MqttState(S::ConnectionAborted) => "closed by the broker".to_owned(),
        E::MqttState(S::AwaitPingResp) => "no PINGRESP from the broker".to_owned(),
        other => other.to_string(),
    }
}

fn v5_reason(error: &rumqttc::v5::ConnectionError) -> String {
    use rumqttc::v5::{ConnectionError as E, StateError as S};
    match error {
        E::Io(e) | E::MqttState(S::Io(e)) => io_reason(e),
        E::Tls(rumqttc::TlsError::Io(e)) => format!("TLS: {}", io_reason(e)),
        E::Tls(e) => format!("TLS: {e}"),
        E::Timeout(_) => "timed out connecting".to_owned(),
        E::MqttState(S::ConnectionAborted) => "closed by the broker".to_owned(),
        E::MqttState(S::AwaitPingResp) => "no PINGRESP from the broker".to_owned(),
        E::MqttState(S::ServerDisconnect {
            reason_code,
            reason_string,
        }) => match reason_string {
            Some(text) => format!("DISCONNECT from the broker: {reason_code:?} ({text})"),
            None => format!("DISCONNECT from the broker: {reason_code:?}"),
        },
        other => other.to_string(),
    }
}

type Connack = oneshot::Sender<Result<(), MqttError>>;

fn connect_failure(refused: Option<Code>, reason: String) -> MqttError {
    match refused {
        Some((code, reason)) => MqttError::Refused { code, reason },
        None => MqttError::Connect(reason),
    }
}

async fn drive_v311(mut eventloop: rumqttc::EventLoop, shared: Arc<Shared>, connack: Connack) {
    use rumqttc::{Event, Packet};
    let mut connack = Some(connack);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(tx) = connack.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(Event::Incoming(packet)) => {
                let note = match packet {
                    Packet::PubAck(ack) => Note::PubAck(ack.pkid, Ok(0)),
                    Packet::PubComp(ack) => Note::PubComp(ack.pkid, Ok(0)),
                    Packet::SubAck(ack) => {
                        let result = ack
                            .return_codes
                            .first()
                            .map_or(Err((0x80, "empty SUBACK")), |c| codes::v4_suback(*c));
                        Note::SubAck(ack.pkid, result)
                    }
                    Packet::UnsubAck(ack) => Note::UnsubAck(ack.pkid, Ok(0)),
                    Packet::Publish(publish) => Note::Publish(publish.topic, publish.payload),
                    _ => continue,
                };
                shared.on_note(note);
            }
            Ok(Event::Outgoing(outgoing)) => shared.on_outgoing(&outgoing),
            Err(error) => {
                let reason = v311_reason(&error);
                match connack.take() {
                    Some(tx) => {
                        let refused = match &error {
                            rumqttc::ConnectionError::ConnectionRefused(code) => {
                                Some(codes::v4_connack(*code))
                            }
                            _ => None,
                        };
                        let _ = tx.send(Err(connect_failure(refused, reason)));
                    }
                    None => shared.close(reason),
                }
                return;
            }
        }
    }
}

async fn drive_v5(mut eventloop: rumqttc::v5::EventLoop, shared: Arc<Shared>, connack: Connack) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let mut connack = Some(connack);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(tx) = connack.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(Event::Incoming(packet)) => {
                let note = match packet {
                    Packet::PubAck(ack) => Note::PubAck(ack.pkid, codes::v5_puback(ack.reason)),
                    Packet::PubRec(rec) => match codes::v5_pubrec(rec.reason) {
                        Ok(_) => continue,
                        Err(code) => Note::PubRecFailed(rec.pkid, code),
                    },
                    Packet::PubComp(ack) => Note::PubComp(ack.pkid, codes::v5_pubcomp(ack.reason)),
                    Packet::SubAck(ack) => {
                        let result = ack
                            .return_codes
                            .first()
                            .map_or(Err((0x80, "empty SUBACK")), |c| codes::v5_suback(*c));
                        Note::SubAck(ack.pkid, result)
                    }
                    Packet::UnsubAck(ack) => {
                        let result = ack
                            .reasons
                            .first()
                            .map_or(Ok(0), |c| codes::v5_unsuback(*c));
                        Note::UnsubAck(ack.pkid, result)
                    }
                    Packet::Publish(publish) => Note::Publish(
                        String::from_utf8_lossy(&publish.topic).into_owned(),
                        publish.payload,
                    ),
                    _ => continue,
                };
                shared.on_note(note);
            }
            Ok(Event::Outgoing(outgoing)) => shared.on_outgoing(&outgoing),
            Err(error) => {
                let reason = v5_reason(&error);
                match connack.take() {
                    Some(tx) => {
                        let refused = match &error {
                            rumqttc::v5::ConnectionError::ConnectionRefused(code) => {
                                Some(codes::v5_connack(*code))
                            }
                            _ => None,
                        };
                        let _ = tx.send(Err(connect_failure(refused, reason)));
                    }
                    None => shared.close(reason),
                }
                return;
            }
        }
    }
}
