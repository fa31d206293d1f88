//! A stamped message published by another LoadDensity process: the subscriber times it from the
//! stamp alone. The test runs this test binary again as the publisher (the child), which
//! publishes one stamped QoS 1 message and reports its publish event on stdout.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{ok, options, recorder, run_one, topic, DelayProxy};
use load_density_core::{GroupPlan, TaskList, UserTemplate};
use load_density_mqtt::{stamped_stats, MqttProtocol, StampedStats};
use load_density_testkit::MqttBroker;
use serde_json::json;

/// Set in the child: the broker to publish to.
const BROKER_ENV: &str = "LD_MQTT_CROSS_PROCESS_BROKER";
/// Set in the child: the topic to publish on.
const TOPIC_ENV: &str = "LD_MQTT_CROSS_PROCESS_TOPIC";
/// The child's report, `<marker> <start µs since the epoch> <duration µs> <published> <lost>`
/// (libtest may print it after other text on the line).
const MARKER: &str = "child-published";
/// How late the broker's bytes reach the subscriber.
const DELIVERY_DELAY: Duration = Duration::from_millis(300);
/// How long after the child ended the subscriber first looks.
const LOOK_AFTER: Duration = Duration::from_millis(1500);
/// The longest the child may take.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamped_in_another_process() -> anyhow::Result<()> {
    match (std::env::var(BROKER_ENV), std::env::var(TOPIC_ENV)) {
        (Ok(broker), Ok(topic)) => publish_as_child(broker, topic).await,
        _ => subscribe_as_parent().await,
    }
}

/// The child: one stamped QoS 1 publish, reported on stdout.
async fn publish_as_child(broker: String, topic: String) -> anyhow::Result<()> {
    let tasks = json!([
        {"method": "publish", "topic": topic, "qos": 1, "stamp": true,
         "payload": "from the child"},
    ]);
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?)
        .with_options(options(&[("broker", json!(broker))]));
    let factory = MqttProtocol.prepare_group(&plan).await?;
    let recorder = recorder();
    let mut publisher = factory.user(1);
    let mut ctx = recorder.context(1);
    let published = ok(run_one(&mut publisher, 0, &mut ctx, &recorder).await);
    publisher.on_stop(&mut ctx).await;
    let stats = stamped_stats();
    println!(
        "{MARKER} {} {} {} {}",
        micros(published.start_time),
        published.response_time.as_micros(),
        stats.published,
        stats.lost()
    );
    Ok(())
}

/// The parent: subscribes (through a proxy that delivers late), runs the child, and looks for
/// the message a while after the child ended.
async fn subscribe_as_parent() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    let proxy = DelayProxy::start(broker.broker(), DELIVERY_DELAY).await?;
    let t = topic("cross-process");
    let tasks = json!([
        {"method": "subscribe", "topic": t, "qos": 1},
        {"method": "receive", "topic": t, "timeout": 10},
    ]);
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?)
        .with_options(options(&[("broker", json!(proxy.broker()))]));
    let factory = MqttProtocol.prepare_group(&plan).await?;
    let recorder = recorder();
    let mut subscriber = factory.user(1);
    let mut ctx = recorder.context(1);
    ok(run_one(&mut subscriber, 0, &mut ctx, &recorder).await);

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "stamped_in_another_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BROKER_ENV, broker.broker())
        .env(TOPIC_ENV, &t)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read its pipes on blocking threads while waiting, bounded, for it to end.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > CHILD_LIMIT {
            child.kill()?;
            panic!("the child did not end within {CHILD_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (stdout, stderr) = (stdout.await?, stderr.await?);
    assert!(
        status.success(),
        "the child failed: {status}\n{stdout}\n{stderr}"
    );
    let report: Vec<u64> = stdout
        .lines()
        .find_map(|line| line.split_once(MARKER).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no report line from the child:\n{stdout}"))
        .split_whitespace()
        .map(|field| field.parse().expect("a number"))
        .collect();
    let [start_us, took_us, child_published, child_lost] = report[..] else {
        panic!("a bad report: {report:?}");
    };
    // Loss is counted per process: the child saw no receipt of its message.
    assert_eq!((child_published, child_lost), (1, 1));

    // The child has ended; look a while later still.
    tokio::time::sleep(LOOK_AFTER).await;
    let looked = SystemTime::now();
    let message = subscriber.send(1, &mut ctx).await?.expect("a message");
    assert_eq!(message.text(), "from the child");
    let events = recorder.take();
    assert_eq!(events.len(), 1, "{events:?}");
    let recv = &events[0];
    assert_eq!(&*recv.request_type, "MQTT_RECV");
    assert!(recv.is_success(), "{recv:?}");
    assert_eq!(&*recv.name, t);
    // Starts at the child's stamp, taken during its publish task (to the microsecond).
    let stamp = micros(recv.start_time);
    assert!(
        stamp >= start_us && stamp <= start_us + took_us + 1,
        "stamp {stamp} outside the child's publish [{start_us}, +{took_us}]"
    );
    // Lasts until the delivery, not until this process looked.
    assert!(recv.response_time >= DELIVERY_DELAY, "{recv:?}");
    let until_looked = looked.duration_since(recv.start_time)?;
    assert!(
        recv.response_time + Duration::from_millis(500) < until_looked,
        "{recv:?}, looked {until_looked:?} after the stamp"
    );
    // Nothing published here, and a receipt of another process's message is counted by nobody.
    assert_eq!(stamped_stats(), StampedStats::default());

    subscriber.on_stop(&mut ctx).await;
    Ok(())
}
