//! # load-density-mqtt
//!
//! The `mqtt_user` of LoadDensity: one MQTT connection per simulated user, speaking MQTT 3.1.1
//! (default) or MQTT 5, over TCP or TLS. The connection is this crate's own; [rumqttc] is its
//! packet codec only (`rumqttc::mqttbytes::v4`, `rumqttc::v5::mqttbytes::v5`).
//!
//! Linking this crate registers the user type `"mqtt_user"` with the core registry; binaries
//! that do not get it through the runner's cargo features name it (`use load_density_mqtt as
//! _;`).
//!
//! | feature | behaviour |
//! |---|---|
//! | connection | one per user, made by the first task that needs it (or `connect`), kept across tasks while the broker stays the same; a task naming another broker disconnects from the old one first. Default client id `loaddensity-<user_id>-<8 random hex digits>`, clean session, keep-alive 60 s |
//! | timing | `connect` until CONNACK; `publish` until PUBACK (QoS 1), PUBCOMP (QoS 2) or written to the socket (QoS 0); `subscribe` until SUBACK; `unsubscribe` until UNSUBACK; `receive` until the message is taken; `disconnect` until DISCONNECT is written. A task that has to connect first includes the connect in its time |
//! | failures | a refused CONNACK (`connection refused: bad user name or password (code 4)`), a SUBACK failure or an MQTT 5 PUBACK/PUBREC/UNSUBACK reason code ≥ 0x80 (`SUBACK refused: not authorized (code 135)`), a timeout (`timed out after 5s waiting for PUBACK`), a refused or broken connection (`connection failed: Connection refused (os error 111)`, `connection lost: closed by the broker`). The reason carries the code; the event's `status` too |
//! | broken connections | the connection's task notices at once; the next task records one failure named `connection` (`connection lost: ...`, unless a task waiting at that moment already failed with it) and then reconnects |
//! | end-to-end latency | `stamp: true` puts a 20-byte header (wall-clock send time, message id) in front of the payload; every user that receives a stamped message records an `MQTT_RECV` event timed from that send time to the message's arrival, whichever process published it. [`stamped_stats`] counts stamped QoS 1/2 messages published, received and lost in this process |
//! | TLS | `mqtts://` brokers, certificates checked against the Mozilla roots plus `ca_file`; `verify: false` turns checks off. The rustls configurations are core's shared ones ([`tls::client_config`](load_density_core::tls::client_config)), with the ring provider only |
//! | MQTT 5 | `protocol_version: 5` uses rumqttc's v5 codec; reason codes of acknowledgements are checked; the CONNECT announces `max_packet_size`, and a broker's `server_keep_alive` is honoured |
//! | keep-alive | a PINGREQ after `keepalive` seconds without anything written; no PINGRESP by the next one ends the connection (`connection lost: no PINGRESP from the broker`) |
//! | memory | per idle connection: one tokio task (~900 B), the shared state (~220 B) and the socket; no read buffer between packets (bytes are read through a stack chunk; a packet's room grows with the bytes that arrive, after its announced size is checked against `max_packet_size`), a small reused write buffer, and a vec of the requests awaiting an acknowledgement (at most 16) instead of tables per packet id |
//!
//! ## Tasks
//!
//! Every text value may hold `${...}` placeholders. A task's protocol keys are checked when the
//! run is prepared: an unknown key, a bad value or a key that does not apply to the method is a
//! [`PlanError`](load_density_core::PlanError) naming the task index and key.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `method` | `publish` | `connect`, `publish`, `subscribe`, `unsubscribe`, `receive` or `disconnect` (any case) |
//! | `broker` or `host` | the group option `broker`, else the group's host, else `127.0.0.1:1883` | `mqtt://h:p`, `mqtts://h:p` (TLS; port 8883 by default), or `h:p` (port 1883 by default); `tcp://`, `ssl://` and `tls://` are accepted too |
//! | `topic` | | a topic for `publish` (required, no wildcards); a filter for `subscribe`/`unsubscribe` (required) and `receive` (optional: without it any message will do) |
//! | `payload` | empty | `publish` only: text sent as UTF-8, `hex:0a0b` or `b64:AAE=` for bytes; any other JSON value is sent as JSON text |
//! | `qos` | `0` | 0, 1 or 2: of the publish, the subscription, or the subscription `receive` makes |
//! | `retain` | `false` | `publish` only |
//! | `stamp` | `false` | `publish` only: prefix the stamp header (see below) |
//! | `expect` | | `receive` only: wait for a message whose payload contains this text (messages on the topic without it are dropped) |
//! | `client_id` | `loaddensity-<user_id>-<random hex>` | used when the task opens the connection |
//! | `username` / `password` | | used when the task opens the connection; credentials are sent only with a non-empty user name |
//! | `keepalive` | `60` | seconds, 0..=65535 (0 turns pings off) |
//! | `clean_session` | `true` | MQTT 5: clean start |
//! | `protocol_version` | `4` (group option, else 4) | 4 (MQTT 3.1.1) or 5 |
//! | `timeout` | `5` (group option, else 5) | seconds: for the connect, then for the acknowledgement or message |
//! | `verify` / `ca_file` | group options, else `true` / none | TLS certificate checks; `ca_file` is a PEM file of extra trusted CAs, read when the run is prepared |
//! | `name` | `<method>:<topic>` | statistics name |
//!
//! Group options (from `user_detail_dict` and extra `start_test` keys, see
//! [`OPTION_NAMES`]): `broker`, `timeout`, `verify`, `ca_file`, `protocol_version`, and
//! `max_packet_size`: the largest packet, in bytes, a user sends or accepts from the broker
//! (default [`DEFAULT_MAX_PACKET_SIZE`], 16 MiB; at most MQTT's own limit of 256 MiB). A larger
//! incoming packet drops the connection with an error instead of growing the user's memory.
//!
//! Events: request type `MQTT` (tasks) and `MQTT_RECV` (received stamped messages), URL = the
//! broker as written, lengths in bytes (payload sent by `publish`, received by `receive`, stamp
//! header included; 0 for the other methods). For assertions, [`MqttResponse`] is the
//! [`Response`](load_density_core::Response): `body()` is the received payload (without a
//! stamp header), `status()` the acknowledgement's code and `header("topic")` the topic of a
//! received message.
//!
//! ## Example: publishers and subscribers
//!
//! A `start_test` configuration with two groups of `mqtt_user`: 500 publishers stamp a QoS 1
//! message every 250 ms on their device's topic; 10 subscribers take messages as they come
//! (`receive` subscribes by itself on its first run). The group's `host` is the broker.
//!
//! ```json
//! {
//!   "user_count": 510, "spawn_rate": 100, "test_time": 60,
//!   "variables": {"device": "d-1"},
//!   "user_groups": [
//!     {"name": "publishers", "user": "mqtt_user", "fixed_count": 500,
//!      "host": "mqtt://127.0.0.1:1883", "wait_time": {"constant_pacing": 0.25},
//!      "tasks": [
//!        {"method": "publish", "topic": "devices/${var.device}/telemetry", "qos": 1,
//!         "stamp": true, "payload": {"temperature": 21.5}, "timeout": 2}
//!      ]},
//!     {"name": "subscribers", "user": "mqtt_user", "fixed_count": 10,
//!      "host": "mqtt://127.0.0.1:1883",
//!      "tasks": [
//!        {"method": "receive", "topic": "devices/+/telemetry", "qos": 1, "timeout": 10}
//!      ]}
//!   ]
//! }
//! ```
//!
//! The subscribers' `MQTT_RECV` events (one per message, named by the message's topic) give
//! the end-to-end latency; their `MQTT` `receive` events time the wait for each message.
//!
//! ## Preparing a group
//!
//! The runner does this for you; a test or an embedding program can do it directly and drive
//! [`MqttUser`]s itself, through [`UserTemplate`](load_density_core::UserTemplate) or
//! [`MqttUser::send`] to get the [`MqttResponse`] back.
//!
//! ```
//! use load_density_core::{GroupPlan, PlanError, TaskList};
//! use load_density_mqtt::{MqttMethod, MqttProtocol};
//! use serde_json::json;
//!
//! # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
//! let tasks = TaskList::from_json(&json!([
//!     {"method": "subscribe", "topic": "sensors/#", "qos": 1},
//!     {"topic": "sensors/1", "payload": "hex:00ff", "qos": 2, "stamp": true},
//!     {"method": "receive", "topic": "sensors/#", "timeout": 0.5},
//! ]))
//! .expect("tasks");
//! let plan = GroupPlan::new("mqtt_user", tasks).with_host(Some("mqtt://127.0.0.1:1883".into()));
//! let factory = MqttProtocol.prepare_group(&plan).await.expect("valid plan");
//! assert_eq!(factory.method(1), Some(MqttMethod::Publish));
//! assert!(!factory.user(1).is_connected()); // connections are made by the first task
//!
//! let bad = TaskList::from_json(&json!([{"topic": "t", "qos": 3}])).expect("tasks");
//! let error = MqttProtocol
//!     .prepare_group(&GroupPlan::new("mqtt_user", bad))
//!     .await
//!     .expect_err("qos 3 does not exist");
//! assert!(matches!(error, PlanError::Task { index: 0, .. }), "{error}");
//! assert!(error.to_string().contains("tasks[0].qos"), "{error}");
//! # });
//! ```
//!
//! ## Stamped messages and loss
//!
//! The header is [`STAMP_LEN`] = 20 bytes in front of the payload:
//!
//! | bytes | content |
//! |---|---|
//! | 0..4 | the magic [`STAMP_MAGIC`], `00 4C 44 01` (`\0LD` and format version 1) |
//! | 4..12 | the publisher's wall-clock send time, microseconds since the Unix epoch, big-endian |
//! | 12..20 | a message id, unique in the publishing process (random high 32 bits per process), big-endian |
//!
//! A subscriber recognises it, strips it, and records one `MQTT_RECV` event per stamped message,
//! whoever published it: name = the message's topic, URL = the subscriber's broker, length =
//! payload bytes (header included), status none.
//!
//! **How a receipt is timed.** From the header alone, so publishers and subscribers may be in
//! different LoadDensity processes: the event starts at the publisher's send time (the stamp)
//! and its response time is the subscriber's wall clock when its connection's task read the
//! PUBLISH from the connection, minus the stamp. That is publish → broker → delivery, nothing
//! of the subscriber's own pace: a user busy elsewhere, or one that waits before it calls
//! `receive`, records the same latency. It is recorded with
//! [`UserContext::record_measured`](load_density_core::UserContext::record_measured). The two
//! wall clocks have to agree: on one machine they are the same clock; across machines an
//! offset between their clocks (keep them synchronised, by NTP or PTP) adds to or subtracts
//! from every latency, and a receipt that looks earlier than its stamp is recorded as 0.
//!
//! **Where receipts are recorded.** The user's connection task takes the receipt (and counts it
//! in [`stamped_stats`]) the moment the message arrives; the user records the `MQTT_RECV`
//! event itself, because only it holds its [`UserContext`](load_density_core::UserContext):
//! at once while it waits in `receive` (the arrival wakes it), otherwise at the start and end of
//! its next task, and in `on_stop`, so none is lost when the run stops. Until then receipts wait
//! in a queue of [`RECEIPT_BUFFER`] per connection (the oldest dropped past it and counted in
//! [`StampedStats::unrecorded`]). Recording late changes when the event reaches the statistics,
//! not its latency.
//!
//! **Loss** counts stamped QoS 1/2 messages only, per process: [`StampedStats::published`] ==
//! [`StampedStats::received`] + [`StampedStats::lost`]. A message counts as received when any
//! user of this process receives it, so the counts add up only when a topic's publishers and
//! subscribers share the process; the registry this takes holds the ids of messages published
//! and not yet received (for [`STAMP_LOSS_WINDOW`] or two at most: a message not received by
//! then counts as lost for good, so a publish-only process does not accumulate ids) and, for
//! [`StampedStats::duplicates`], of messages received in the last [`STAMP_DUPLICATE_WINDOW`] or
//! two, never timers. Read the counts after the run stopped, and
//! reset them between runs with [`reset_stamped_stats`].
//!
//! ## Choices
//!
//! - **The connection runs in a tokio task of the user's own**, spawned when the
//!   connection is made and aborted when it is closed, replaced or the user is dropped. It never
//!   waits on the user: acknowledgements complete oneshot channels matched by packet id,
//!   incoming messages go to bounded queues ([`MESSAGE_BUFFER`] messages for `receive`, the
//!   oldest dropped first, and only in groups with a `receive` task; [`RECEIPT_BUFFER`]
//!   receipts), so a slow user never stalls its connection and a slow broker only delays acks.
//! - **Requests are queued without waiting**: a full request queue (8) or 16 requests still
//!   awaiting acknowledgements fail the task at once (`request not accepted: ...`) instead of
//!   blocking the user; so does a PUBLISH larger than `max_packet_size` (the connection stays).
//! - **No automatic reconnect**: a broken connection is reported and replaced
//!   lazily by the next task, so a down broker costs one refused connect per task, not a
//!   reconnect loop per user. Subscriptions are per connection: after a reconnect, `receive`
//!   subscribes again by itself (it subscribes whenever the connection has no subscription
//!   covering its topic), `subscribe` tasks have to run again.
//! - **A `receive` interrupted by the run's stop records nothing**: it was waiting, not
//!   requesting.
//! - The embedded test broker of `load-density-testkit` speaks MQTT 3.1.1 only; MQTT 5 is
//!   tested against the real mosquitto.

mod broker;
mod codes;
mod connection;
mod error;
mod payload;
mod protocol;
mod register;
mod response;
mod session;
mod stamp;
mod task;
mod user;
mod wire;

pub use broker::DEFAULT_BROKER;
pub use error::MqttError;
pub use protocol::{MqttProtocol, MqttUserFactory, OPTION_NAMES};
pub use response::MqttResponse;
pub use session::{ProtocolVersion, MESSAGE_BUFFER, RECEIPT_BUFFER};
pub use stamp::{
    reset_stamped_stats, stamped_stats, StampedStats, STAMP_DUPLICATE_WINDOW, STAMP_LEN,
    STAMP_LOSS_WINDOW, STAMP_MAGIC,
};
pub use task::{MqttMethod, DEFAULT_KEEPALIVE, DEFAULT_TIMEOUT};
pub use user::{MqttUser, CONNECTION_LOST_NAME, RECV_REQUEST_TYPE, REQUEST_TYPE};

/// The largest MQTT packet a user sends or accepts when the group sets no `max_packet_size`
/// (16 MiB).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 16 * 1024 * 1024;
