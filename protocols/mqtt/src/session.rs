//! One MQTT connection of one user: the state the user and the connection's task share, and
//! the user's side of it.
//!
//! The user queues a request (with a oneshot waiter) in the shared state and wakes the
//! connection's task ([`Driver`](crate::connection::Driver)), which owns the socket, writes the
//! request with its packet id and completes the waiter when the acknowledgement arrives. The
//! task never waits on the user: it buffers incoming messages in bounded queues (dropping the
//! oldest when full) and wakes the user. rumqttc is only the packet codec ([`crate::wire`]).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::connection::{self, Driver};
use crate::error::MqttError;
use crate::stamp;

/// Requests queued on a connection at most. A user queues one request and waits for it (a
/// `DISCONNECT` may follow a request that timed out), so a few are enough; a full queue is a
/// failed request (`Busy`), never a wait.
const REQUEST_CAPACITY: usize = 8;
/// Incoming messages kept for `receive` per connection (the oldest are dropped past it).
pub const MESSAGE_BUFFER: usize = 1024;
/// Receipts of stamped messages kept per connection until the user records them; past it the
/// oldest are dropped and counted in [`StampedStats::unrecorded`](crate::StampedStats::unrecorded).
pub const RECEIPT_BUFFER: usize = 65_536;

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
    /// The local address to bind the connection to (the group's `source_addresses`).
    pub(crate) source: Option<std::net::IpAddr>,
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
/// connection's task read the PUBLISH, whenever the user records it.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    pub(crate) topic: Arc<str>,
    pub(crate) wire_len: usize,
    /// The publisher's send time, from the stamp.
    pub(crate) sent: SystemTime,
    /// From `sent` to the arrival (wall clocks), zero when the arrival looks earlier.
    pub(crate) latency: Duration,
}

pub(crate) type Reply = oneshot::Sender<Result<Option<u8>, MqttError>>;

/// A request queued on the connection, waiting for its acknowledgement.
pub(crate) struct Pending {
    receiver: oneshot::Receiver<Result<Option<u8>, MqttError>>,
    what: &'static str,
}

/// A request of the user for the connection's task, with the waiter to complete.
pub(crate) enum Request {
    Publish {
        topic: String,
        qos: u8,
        retain: bool,
        payload: Bytes,
        reply: Reply,
    },
    Subscribe {
        filter: String,
        qos: u8,
        reply: Reply,
    },
    Unsubscribe {
        filter: String,
        reply: Reply,
    },
    Disconnect {
        reply: Reply,
    },
}

impl Request {
    fn into_reply(self) -> Reply {
        match self {
            Request::Publish { reply, .. }
            | Request::Subscribe { reply, .. }
            | Request::Unsubscribe { reply, .. }
            | Request::Disconnect { reply } => reply,
        }
    }
}

#[derive(Default)]
struct State {
    /// Requests the connection's task has not taken yet.
    requests: VecDeque<Request>,
    messages: VecDeque<Message>,
    receipts: VecDeque<Receipt>,
    closed: Option<String>,
    loss_reported: bool,
}

/// What the user and the connection's task share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the user: a message arrived or the connection ended.
    activity: Notify,
    /// Wakes the connection's task: a request was queued.
    pub(crate) wake: Notify,
    buffer_messages: bool,
}

impl Shared {
    fn new(buffer_messages: bool) -> Self {
        Self {
            state: Mutex::new(State::default()),
            activity: Notify::new(),
            wake: Notify::new(),
            buffer_messages,
        }
    }

    /// The requests queued since the last call.
    pub(crate) fn take_requests(&self) -> VecDeque<Request> {
        std::mem::take(&mut self.state.lock().requests)
    }

    /// A PUBLISH from the broker: a receipt if it is stamped, a buffered message if the group
    /// receives.
    pub(crate) fn on_publish(&self, topic: String, payload: Bytes) {
        // The arrival: the connection's task read the PUBLISH just now.
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

    /// The connection ended: every waiter (the task's `waiters` and the requests still queued)
    /// fails with `reason`. `None`: the user disconnected; nothing is reported as lost.
    pub(crate) fn close(&self, reason: Option<String>, waiters: impl Iterator<Item = Reply>) {
        let mut state = self.state.lock();
        let queued: Vec<Reply> = state.requests.drain(..).map(Request::into_reply).collect();
        let text = reason.clone().unwrap_or_else(|| "disconnected".to_owned());
        let mut told = false;
        for waiter in waiters.chain(queued) {
            told |= waiter
                .send(Err(MqttError::ConnectionLost(text.clone())))
                .is_ok();
        }
        state.loss_reported = told || reason.is_none();
        state.closed = Some(text);
        drop(state);
        self.activity.notify_one();
    }
}

/// One live (or lost) connection.
pub(crate) struct Session {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    subscriptions: HashSet<String>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    /// Connects and waits for a successful CONNACK, at most `params.timeout`.
    pub(crate) async fn connect(params: &ConnectParams) -> Result<Session, MqttError> {
        let opened = match tokio::time::timeout(params.timeout, connection::open(params)).await {
            Err(_) => return Err(MqttError::timeout("CONNACK", params.timeout)),
            Ok(opened) => opened?,
        };
        let shared = Arc::new(Shared::new(params.buffer_messages));
        let driver = Driver::new(
            opened,
            params.version,
            params.max_packet_size,
            params.keepalive,
            shared.clone(),
        );
        let task = tokio::spawn(driver.run());
        Ok(Session {
            shared,
            task,
            subscriptions: HashSet::new(),
        })
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

    /// Queues a request for the connection's task and wakes it.
    fn submit(
        &self,
        request: impl FnOnce(Reply) -> Request,
    ) -> Result<oneshot::Receiver<Result<Option<u8>, MqttError>>, MqttError> {
        let (reply, receiver) = oneshot::channel();
        {
            let mut state = self.shared.state.lock();
            if let Some(reason) = state.closed.clone() {
                state.loss_reported = true;
                return Err(MqttError::ConnectionLost(reason));
            }
            if state.requests.len() >= REQUEST_CAPACITY {
                return Err(MqttError::Busy(format!(
                    "{REQUEST_CAPACITY} requests are already queued on the connection"
                )));
            }
            state.requests.push_back(request(reply));
        }
        self.shared.wake.notify_one();
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
            Ok(Err(_)) => Err(MqttError::ConnectionLost(
                "the connection's task ended".to_owned(),
            )),
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
        if !rumqttc::valid_topic(topic) {
            return Err(MqttError::Busy(format!(
                "invalid topic {topic:?} for publish (no '+' or '#' wildcards)"
            )));
        }
        let receiver = self.submit(|reply| Request::Publish {
            topic: topic.to_owned(),
            qos: qos.min(2),
            retain,
            payload,
            reply,
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
        if !rumqttc::valid_filter(filter) {
            return Err(MqttError::Busy(format!("invalid topic filter {filter:?}")));
        }
        let receiver = self.submit(|reply| Request::Subscribe {
            filter: filter.to_owned(),
            qos: qos.min(2),
            reply,
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
        let receiver = self.submit(|reply| Request::Unsubscribe {
            filter: filter.to_owned(),
            reply,
        })?;
        let code = self.wait(receiver, "UNSUBACK", limit).await?;
        self.subscriptions.remove(filter);
        Ok(code)
    }

    /// Sends DISCONNECT and waits until it is written (at most `limit`).
    pub(crate) async fn disconnect(&self, limit: Duration) -> Result<(), MqttError> {
        let receiver = self.submit(|reply| Request::Disconnect { reply })?;
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
