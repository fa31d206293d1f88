//! An embedded MQTT 3.1.1 broker: enough of the protocol for load tests, in the test process.
//!
//! Supported: CONNECT (optionally checking one user name and password), PUBLISH at QoS 0, 1 and
//! 2 in both directions, retained messages, SUBSCRIBE / UNSUBSCRIBE with `+` and `#` wildcards,
//! PINGREQ and DISCONNECT. Not supported: persistent sessions (`clean_session: false` is
//! accepted but nothing is kept), wills, keep-alive enforcement, retransmission, MQTT 5 (a
//! CONNECT at protocol level 5 is answered with return code 1, unacceptable protocol version).
//! A message is routed when its PUBLISH arrives (for QoS 2 too) and delivered once per
//! subscribed client, at the lower of the publish and subscription QoS.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, PubRel, Publish, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{matches, valid_filter, Error as CodecError, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// The largest packet the broker reads or writes.
const MAX_PACKET: usize = 268_435_455;
/// How long a new connection may take to send CONNECT.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Settings of an [`MqttBroker`].
#[derive(Debug, Clone, Default)]
pub struct MqttBrokerConfig {
    /// When set, CONNECT must carry this user name and password (else CONNACK return code 4,
    /// bad user name or password).
    pub credentials: Option<(String, String)>,
    /// Delay before each PUBACK, PUBREC and SUBACK is sent: a slow broker.
    pub ack_delay: Duration,
}

/// Counters of an [`MqttBroker`] since it started (kept across [`MqttBroker::restart`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MqttBrokerStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// CONNECTs accepted (CONNACK return code 0).
    pub connects: u64,
    /// CONNECTs refused.
    pub refused: u64,
    /// PUBLISH packets received from clients.
    pub publishes: u64,
    /// PUBLISH packets sent to subscribers.
    pub deliveries: u64,
    /// SUBSCRIBE packets received.
    pub subscribes: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    connects: AtomicU64,
    refused: AtomicU64,
    publishes: AtomicU64,
    deliveries: AtomicU64,
    subscribes: AtomicU64,
    peers: crate::stats::Peers,
}

struct Client {
    tx: mpsc::UnboundedSender<Packet>,
    subscriptions: Vec<(String, QoS)>,
    next_pkid: u16,
}

impl Client {
    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }
}

#[derive(Default)]
struct State {
    clients: Mutex<HashMap<u64, Client>>,
    retained: Mutex<HashMap<String, Publish>>,
    counters: Counters,
    next_client: AtomicU64,
}

impl State {
    fn route(&self, publish: &Publish) {
        let mut clients = self.clients.lock();
        for client in clients.values_mut() {
            let granted = client
                .subscriptions
                .iter()
                .filter(|(filter, _)| matches(&publish.topic, filter))
                .map(|(_, qos)| *qos)
                .max_by_key(|qos| *qos as u8);
            let Some(granted) = granted else { continue };
            let qos = lower(publish.qos, granted);
            let mut delivery =
                Publish::from_bytes(publish.topic.clone(), qos, publish.payload.clone());
            if qos != QoS::AtMostOnce {
                delivery.pkid = client.pkid();
            }
            if client.tx.send(Packet::Publish(delivery)).is_ok() {
                self.counters.deliveries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn lower(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) {
        a
    } else {
        b
    }
}

/// An embedded MQTT 3.1.1 broker on `127.0.0.1` (see the module docs for what it supports).
///
/// It stops when dropped; [`MqttBroker::stop`] and [`MqttBroker::restart`] take it down and
/// bring it back on the same port, to test clients against a broker that goes away.
pub struct MqttBroker {
    port: u16,
    config: MqttBrokerConfig,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MqttBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttBroker")
            .field("port", &self.port)
            .field("running", &self.accept.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}

impl MqttBroker {
    /// Starts an anonymous broker on `127.0.0.1:0`.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(MqttBrokerConfig::default()).await
    }

    /// Starts a broker with `config` on `127.0.0.1:0`.
    pub async fn start_with(config: MqttBrokerConfig) -> io::Result<Self> {
        let mut broker = Self {
            port: 0,
            config,
            state: Arc::new(State::default()),
            accept: None,
        };
        broker.listen().await?;
        Ok(broker)
    }

    async fn listen(&mut self) -> io::Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)))?;
        let listener = socket.listen(1024)?;
        self.port = listener.local_addr()?.port();
        self.accept = Some(tokio::spawn(accept_loop(
            listener,
            self.state.clone(),
            self.config.clone(),
        )));
        Ok(())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker address for tasks: `127.0.0.1:<port>`.
    pub fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The counters so far.
    pub fn stats(&self) -> MqttBrokerStats {
        let c = &self.state.counters;
        MqttBrokerStats {
            connections: c.connections.load(Ordering::Relaxed),
            connects: c.connects.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            publishes: c.publishes.load(Ordering::Relaxed),
            deliveries: c.deliveries.load(Ordering::Relaxed),
            subscribes: c.subscribes.load(Ordering::Relaxed),
        }
    }

    /// Connections accepted so far per source (peer) address, in address order.
    pub fn connection_sources(&self) -> Vec<(std::net::IpAddr, u64)> {
        self.state.counters.peers.snapshot()
    }

    /// Clients connected now.
    pub fn connected_clients(&self) -> usize {
        self.state.clients.lock().len()
    }

    /// Stops listening and closes every connection. Idempotent.
    pub fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            // Aborting the accept loop drops its JoinSet, which aborts every connection.
            accept.abort();
        }
        self.state.clients.lock().clear();
    }

    /// Stops (if running) and listens again on the same port. Retained messages and counters
    /// are kept.
    pub async fn restart(&mut self) -> io::Result<()> {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        self.state.clients.lock().clear();
        self.listen().await
    }

    /// Stops the broker and waits until its listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
    }
}

impl Drop for MqttBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, config: MqttBrokerConfig) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    state.counters.connections.fetch_add(1, Ordering::Relaxed);
                    state.counters.peers.record(peer.ip());
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, state.clone(), config.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "mqtt test broker: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one packet, reading more bytes as needed; `None` at end of stream or on a bad packet.
async fn read_packet(
    stream: &mut (impl AsyncReadExt + Unpin),
    buffer: &mut BytesMut,
) -> Option<Result<Packet, CodecError>> {
    loop {
        match Packet::read(buffer, MAX_PACKET) {
            Ok(packet) => return Some(Ok(packet)),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(error) => return Some(Err(error)),
        }
        match stream.read_buf(buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn write_now(stream: &mut OwnedWriteHalf, packet: Packet) -> io::Result<()> {
    let mut buffer = BytesMut::new();
    packet
        .write(&mut buffer, MAX_PACKET)
        .map_err(io::Error::other)?;
    stream.write_all(&buffer).await
}

async fn serve(stream: TcpStream, state: Arc<State>, config: MqttBrokerConfig) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buffer = BytesMut::with_capacity(4096);
    let first = tokio::time::timeout(CONNECT_WAIT, read_packet(&mut reader, &mut buffer)).await;
    let connect = match first {
        Ok(Some(Ok(Packet::Connect(connect)))) => connect,
        Ok(Some(Err(CodecError::InvalidProtocolLevel(_)))) => {
            state.counters.refused.fetch_add(1, Ordering::Relaxed);
            let refusal = ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false);
            let _ = write_now(&mut writer, Packet::ConnAck(refusal)).await;
            return;
        }
        _ => return,
    };
    if let Some((user, pass)) = &config.credentials {
        let accepted = connect
            .login
            .as_ref()
            .is_some_and(|login| login.validate(user, pass));
        if !accepted {
            state.counters.refused.fetch_add(1, Ordering::Relaxed);
            let refusal = ConnAck::new(ConnectReturnCode::BadUserNamePassword, false);
            let _ = write_now(&mut writer, Packet::ConnAck(refusal)).await;
            return;
        }
    }
    if write_now(
        &mut writer,
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
    )
    .await
    .is_err()
    {
        return;
    }
    state.counters.connects.fetch_add(1, Ordering::Relaxed);

    let (tx, rx) = mpsc::unbounded_channel();
    let id = state.next_client.fetch_add(1, Ordering::Relaxed);
    state.clients.lock().insert(
        id,
        Client {
            tx: tx.clone(),
            subscriptions: Vec::new(),
            next_pkid: 0,
        },
    );
    tokio::select! {
        _ = write_loop(writer, rx) => {}
        _ = read_loop(reader, buffer, id, &tx, &state, &config) => {}
    }
    state.clients.lock().remove(&id);
}

async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Packet>) {
    let mut buffer = BytesMut::with_capacity(4096);
    while let Some(packet) = rx.recv().await {
        buffer.clear();
        let mut next = Some(packet);
        // Batch whatever is queued into one write.
        while let Some(packet) = next {
            if packet.write(&mut buffer, MAX_PACKET).is_err() {
                return;
            }
            next = if buffer.len() < 64 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if writer.write_all(&buffer).await.is_err() {
            return;
        }
    }
}

/// Sends an acknowledgement, after the configured delay.
fn ack(tx: &mpsc::UnboundedSender<Packet>, delay: Duration, packet: Packet) {
    if delay.is_zero() {
        let _ = tx.send(packet);
    } else {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(packet);
        });
    }
}

async fn read_loop(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut buffer: BytesMut,
    id: u64,
    tx: &mpsc::UnboundedSender<Packet>,
    state: &State,
    config: &MqttBrokerConfig,
) {
    let delay = config.ack_delay;
    while let Some(Ok(packet)) = read_packet(&mut reader, &mut buffer).await {
        match packet {
            Packet::Publish(publish) => {
                state.counters.publishes.fetch_add(1, Ordering::Relaxed);
                if publish.retain {
                    let mut retained = state.retained.lock();
                    if publish.payload.is_empty() {
                        retained.remove(&publish.topic);
                    } else {
                        retained.insert(publish.topic.clone(), publish.clone());
                    }
                }
                state.route(&publish);
                match publish.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => ack(tx, delay, Packet::PubAck(PubAck::new(publish.pkid))),
                    QoS::ExactlyOnce => ack(tx, delay, Packet::PubRec(PubRec::new(publish.pkid))),
                }
            }
            Packet::PubRel(rel) => {
                let _ = tx.send(Packet::PubComp(PubComp::new(rel.pkid)));
            }
            Packet::PubRec(rec) => {
                let _ = tx.send(Packet::PubRel(PubRel::new(rec.pkid)));
            }
            Packet::PubAck(_) | Packet::PubComp(_) => {}
            Packet::Subscribe(subscribe) => {
                state.counters.subscribes.fetch_add(1, Ordering::Relaxed);
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                let mut added = Vec::new();
                for filter in &subscribe.filters {
                    if valid_filter(&filter.path) {
                        codes.push(SubscribeReasonCode::Success(filter.qos));
                        added.push((filter.path.clone(), filter.qos));
                    } else {
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                if let Some(client) = state.clients.lock().get_mut(&id) {
                    for (path, qos) in &added {
                        client.subscriptions.retain(|(p, _)| p != path);
                        client.subscriptions.push((path.clone(), *qos));
                    }
                }
                ack(
                    tx,
                    delay,
                    Packet::SubAck(SubAck::new(subscribe.pkid, codes)),
                );
                send_retained(state, id, &added);
            }
            Packet::Unsubscribe(unsubscribe) => {
                if let Some(client) = state.clients.lock().get_mut(&id) {
                    client
                        .subscriptions
                        .retain(|(p, _)| !unsubscribe.topics.contains(p));
                }
                let _ = tx.send(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)));
            }
            Packet::PingReq => {
                let _ = tx.send(Packet::PingResp);
            }
            Packet::Disconnect => return,
            _ => return,
        }
    }
}

fn send_retained(state: &State, id: u64, filters: &[(String, QoS)]) {
    if filters.is_empty() {
        return;
    }
    let retained: Vec<Publish> = state
        .retained
        .lock()
        .values()
        .filter(|p| filters.iter().any(|(f, _)| matches(&p.topic, f)))
        .cloned()
        .collect();
    let mut clients = state.clients.lock();
    let Some(client) = clients.get_mut(&id) else {
        return;
    };
    for publish in retained {
        let granted = filters
            .iter()
            .filter(|(f, _)| matches(&publish.topic, f))
            .map(|(_, q)| *q)
            .max_by_key(|q| *q as u8)
            .unwrap_or(QoS::AtMostOnce);
        let qos = lower(publish.qos, granted);
        let mut delivery = Publish::from_bytes(publish.topic.clone(), qos, publish.payload.clone());
        delivery.retain = true;
        if qos != QoS::AtMostOnce {
            delivery.pkid = client.pkid();
        }
        if client.tx.send(Packet::Publish(delivery)).is_ok() {
            state.counters.deliveries.fetch_add(1, Ordering::Relaxed);
        }
    }
}
