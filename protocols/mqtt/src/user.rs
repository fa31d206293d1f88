//! One simulated `mqtt_user`.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::{async_trait, RequestMeta, RequestTimer, UserContext, UserTemplate};

use crate::broker::Broker;
use crate::error::MqttError;
use crate::protocol::GroupShared;
use crate::response::MqttResponse;
use crate::session::{ConnectParams, ProtocolVersion, Receipt, Session};
use crate::stamp::{self, Stamp};
use crate::task::{MqttMethod, Rendered, TaskPlan};

/// Request type of the events of tasks.
pub const REQUEST_TYPE: &str = "MQTT";
/// Request type of the events of received stamped messages.
pub const RECV_REQUEST_TYPE: &str = "MQTT_RECV";
/// Statistics name of the failure recorded when a connection was lost between tasks.
pub const CONNECTION_LOST_NAME: &str = "connection";
/// The longest a user waits for its DISCONNECT to be written when it stops or changes broker.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// The connection a user has, and what it was made for.
struct Live {
    session: Session,
    url: Arc<str>,
    broker: Broker,
    version: ProtocolVersion,
}

/// One simulated user: at most one MQTT connection, made lazily by the first task that needs
/// it and made again (lazily) after it broke.
///
/// Made by [`MqttUserFactory`](crate::MqttUserFactory); the runner drives it through
/// [`UserTemplate`].
pub struct MqttUser {
    user_id: u64,
    shared: Arc<GroupShared>,
    client_id: String,
    live: Option<Live>,
    /// Receipts taken from connections that were closed, with their broker URL.
    salvaged: Vec<(Arc<str>, Receipt)>,
    request_type: Arc<str>,
    recv_type: Arc<str>,
    /// The local address connections bind to (the group's `source_addresses`).
    source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for MqttUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttUser")
            .field("user_id", &self.user_id)
            .field("client_id", &self.client_id)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl MqttUser {
    pub(crate) fn new(user_id: u64, shared: Arc<GroupShared>) -> Self {
        Self {
            user_id,
            shared,
            client_id: format!("loaddensity-{user_id}-{:08x}", rand::random::<u32>()),
            live: None,
            salvaged: Vec::new(),
            request_type: Arc::from(REQUEST_TYPE),
            recv_type: Arc::from(RECV_REQUEST_TYPE),
            source: None,
        }
    }

    /// The user's id.
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// The client id used when a task sets none.
    pub fn default_client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the user has a connection that has not broken (as far as it knows).
    pub fn is_connected(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|live| live.session.closed().is_none())
    }

    /// Runs task `index` and hands its response back instead of recording the task's event.
    /// Receipts of stamped messages are still recorded through `ctx`, and a connection lost
    /// since the last task is still recorded as a `connection` failure.
    ///
    /// `Ok(None)` when a `receive` was interrupted because the run is stopping.
    ///
    /// # Errors
    /// The [`MqttError`] the task failed with (a task that does not exist is a
    /// [`MqttError::Render`] error).
    pub async fn send(
        &mut self,
        index: usize,
        ctx: &mut UserContext,
    ) -> Result<Option<MqttResponse>, MqttError> {
        self.record_receipts(ctx);
        let shared = self.shared.clone();
        let task = shared.tasks.get(index).ok_or_else(|| MqttError::Render {
            index,
            message: format!("no such task (the group has {})", shared.tasks.len()),
        })?;
        let rendered = task
            .render(ctx.variables())
            .map_err(|message| MqttError::Render { index, message })?;
        self.report_loss(ctx);
        let outcome = self.execute(task, &rendered, ctx).await;
        self.record_receipts(ctx);
        outcome
    }

    /// Records every stamped-message receipt collected so far as an `MQTT_RECV` event.
    fn record_receipts(&mut self, ctx: &mut UserContext) {
        for (url, receipt) in std::mem::take(&mut self.salvaged) {
            record_receipt(ctx, &self.recv_type, &url, receipt);
        }
        if let Some(live) = &self.live {
            for receipt in live.session.take_receipts() {
                record_receipt(ctx, &self.recv_type, &live.url, receipt);
            }
        }
    }

    /// Keeps the receipts of a connection that is going away.
    fn salvage(&mut self, live: &Live) {
        self.salvaged.extend(
            live.session
                .take_receipts()
                .into_iter()
                .map(|r| (live.url.clone(), r)),
        );
    }

    /// A connection that broke since the last task: record the loss (unless a task already
    /// failed with it) and forget the connection, so the next task reconnects.
    fn report_loss(&mut self, ctx: &mut UserContext) {
        let Some(live) = self.live.take_if(|live| live.session.closed().is_some()) else {
            return;
        };
        if let Some(reason) = live.session.take_unreported_loss() {
            let meta = RequestMeta::new(
                self.request_type.clone(),
                CONNECTION_LOST_NAME,
                live.url.clone(),
            );
            ctx.record_failure(
                &meta,
                RequestTimer::start(),
                None,
                0,
                MqttError::ConnectionLost(reason),
            );
        }
        self.salvage(&live);
    }

    /// Closes the connection politely: DISCONNECT, written within `limit`, then drop.
    async fn close(&mut self, limit: Duration) -> Result<(), MqttError> {
        let Some(live) = self.live.take() else {
            return Ok(());
        };
        let outcome = if live.session.closed().is_none() {
            live.session.disconnect(limit).await
        } else {
            Ok(())
        };
        self.salvage(&live);
        outcome
    }

    /// The connection for `rendered`'s broker, made now if needed; `true` when it is new.
    async fn ensure(
        &mut self,
        task: &TaskPlan,
        rendered: &Rendered,
    ) -> Result<(&mut Live, bool), MqttError> {
        let reusable = self.live.as_ref().is_some_and(|live| {
            live.broker == rendered.broker
                && live.version == task.connect.version
                && live.session.closed().is_none()
        });
        if !reusable && self.live.is_some() {
            // Another broker: leave the old one politely (Python disconnects it too).
            let _ = self.close(CLOSE_LIMIT.min(task.timeout)).await;
        }
        let fresh = self.live.is_none();
        if fresh {
            let params = ConnectParams {
                broker: rendered.broker.clone(),
                client_id: rendered
                    .client_id
                    .clone()
                    .unwrap_or_else(|| self.client_id.clone()),
                credentials: rendered.credentials.clone(),
                keepalive: task.connect.keepalive,
                clean_session: task.connect.clean_session,
                version: task.connect.version,
                tls: task.connect.tls.clone(),
                timeout: task.timeout,
                buffer_messages: self.shared.buffer_messages,
                max_packet_size: self.shared.max_packet_size,
                source: self.source,
            };
            let session = Session::connect(&params).await?;
            self.live = Some(Live {
                session,
                url: rendered.url.clone(),
                broker: rendered.broker.clone(),
                version: task.connect.version,
            });
        }
        match &mut self.live {
            Some(live) => Ok((live, fresh)),
            None => Err(MqttError::Connect("no connection".to_owned())),
        }
    }

    /// Runs one rendered task; `Ok(None)` when a `receive` was interrupted by the run's stop.
    async fn execute(
        &mut self,
        task: &TaskPlan,
        rendered: &Rendered,
        ctx: &mut UserContext,
    ) -> Result<Option<MqttResponse>, MqttError> {
        match task.method {
            MqttMethod::Connect => {
                let (_, fresh) = self.ensure(task, rendered).await?;
                Ok(Some(MqttResponse::new(fresh.then_some(0), 0)))
            }
            MqttMethod::Publish => self.publish(task, rendered).await.map(Some),
            MqttMethod::Subscribe => {
                let (live, _) = self.ensure(task, rendered).await?;
                let granted = live
                    .session
                    .subscribe(&rendered.topic, task.qos, task.timeout)
                    .await?;
                Ok(Some(MqttResponse::new(Some(granted), 0)))
            }
            MqttMethod::Unsubscribe => {
                let (live, _) = self.ensure(task, rendered).await?;
                let code = live
                    .session
                    .unsubscribe(&rendered.topic, task.timeout)
                    .await?;
                Ok(Some(MqttResponse::new(code, 0)))
            }
            MqttMethod::Disconnect => {
                self.close(task.timeout).await?;
                Ok(Some(MqttResponse::new(None, 0)))
            }
            MqttMethod::Receive => self.receive(task, rendered, ctx).await,
        }
    }

    async fn publish(
        &mut self,
        task: &TaskPlan,
        rendered: &Rendered,
    ) -> Result<MqttResponse, MqttError> {
        let (live, _) = self.ensure(task, rendered).await?;
        let (payload, tracked) = if task.stamp {
            let stamp = Stamp::now(stamp::next_id());
            // Loss is counted for QoS 1/2 only.
            let tracked = (task.qos > 0).then_some(stamp.id);
            if let Some(id) = tracked {
                stamp::published(id);
            }
            (stamp::encode(stamp, &rendered.payload), tracked)
        } else {
            (rendered.payload.clone(), None)
        };
        let length = payload.len();
        let pending = match live
            .session
            .publish(&rendered.topic, task.qos, task.retain, payload)
        {
            Ok(pending) => pending,
            Err(error) => {
                if let Some(id) = tracked {
                    stamp::withdrawn(id);
                }
                return Err(error);
            }
        };
        let code = live.session.finish(pending, task.timeout).await?;
        Ok(MqttResponse::new(code, length))
    }

    async fn receive(
        &mut self,
        task: &TaskPlan,
        rendered: &Rendered,
        ctx: &mut UserContext,
    ) -> Result<Option<MqttResponse>, MqttError> {
        // `sleep` saturates a timeout too far away (`Instant + timeout` would overflow).
        let deadline = tokio::time::sleep(task.timeout);
        tokio::pin!(deadline);
        let filter = task.filter(rendered);
        let expect = rendered.expect.as_deref();
        let mut stop = ctx.stop_signal();
        let recv_type = self.recv_type.clone();
        let (live, _) = self.ensure(task, rendered).await?;
        if let Some(filter) = filter {
            if !live.session.is_subscribed(filter) {
                live.session
                    .subscribe(filter, task.qos, task.timeout)
                    .await?;
            }
        }
        loop {
            for receipt in live.session.take_receipts() {
                record_receipt(ctx, &recv_type, &live.url, receipt);
            }
            if let Some(message) = live.session.take_message(filter, expect) {
                return Ok(Some(MqttResponse::message(
                    message.topic,
                    message.body,
                    message.wire_len,
                )));
            }
            if let Some(reason) = live.session.closed() {
                let _ = live.session.take_unreported_loss();
                return Err(MqttError::ConnectionLost(reason));
            }
            tokio::select! {
                _ = live.session.activity() => {}
                _ = &mut deadline => {
                    let mut what = match filter {
                        Some(filter) => format!("a message on {filter:?}"),
                        None => "a message".to_owned(),
                    };
                    if let Some(expect) = expect {
                        what.push_str(&format!(
                            " containing {:?}",
                            String::from_utf8_lossy(expect)
                        ));
                    }
                    return Err(MqttError::timeout(what, task.timeout));
                }
                _ = stop.stopped() => return Ok(None),
            }
        }
    }
}

/// Records a receipt as an `MQTT_RECV` event: started at the publisher's send time, lasting
/// until the arrival (so the time the user took to record it does not count).
fn record_receipt(ctx: &mut UserContext, recv_type: &Arc<str>, url: &Arc<str>, receipt: Receipt) {
    let meta = RequestMeta::new(recv_type.clone(), receipt.topic, url.clone());
    ctx.record_measured(
        &meta,
        receipt.sent,
        receipt.latency,
        &MqttResponse::new(None, receipt.wire_len),
    );
}

#[async_trait]
impl UserTemplate for MqttUser {
    async fn on_start(&mut self, ctx: &mut UserContext) {
        self.source = ctx.source_address();
    }

    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        self.record_receipts(ctx);
        let shared = self.shared.clone();
        let Some(task) = shared.tasks.get(index) else {
            tracing::error!(
                index,
                tasks = shared.tasks.len(),
                "mqtt_user asked to run a task that does not exist"
            );
            return;
        };
        let rendered = match task.render(ctx.variables()) {
            Ok(rendered) => rendered,
            Err(message) => {
                // No broker or name to record under: name the task instead.
                let meta =
                    RequestMeta::new(self.request_type.clone(), format!("tasks[{index}]"), "");
                let error = MqttError::Render { index, message };
                ctx.record_failure(&meta, RequestTimer::start(), None, 0, error);
                return;
            }
        };
        self.report_loss(ctx);
        let meta = RequestMeta::new(
            self.request_type.clone(),
            rendered.name.clone(),
            rendered.url.clone(),
        );
        let timer = ctx.start_timer();
        match self.execute(task, &rendered, ctx).await {
            Ok(Some(response)) => ctx.record_response(&meta, timer, &response),
            Ok(None) => {}
            Err(error) => ctx.record_failure(&meta, timer, error.status(), 0, error),
        }
        self.record_receipts(ctx);
    }

    async fn on_stop(&mut self, ctx: &mut UserContext) {
        self.record_receipts(ctx);
        let _ = self.close(CLOSE_LIMIT).await;
        self.record_receipts(ctx);
    }
}
