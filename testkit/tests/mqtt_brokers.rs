//! The MQTT test brokers, checked with a plain rumqttc client: the embedded broker routes at
//! every QoS, refuses bad credentials and comes back on its port; mosquitto starts with its
//! two listeners, restarts on the same ports and is stopped by its PID.

use std::time::Duration;

use load_density_testkit::{Mosquitto, MosquittoConfig, MqttBroker, MqttBrokerConfig};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
};

fn client(id: &str, port: u16, login: Option<(&str, &str)>) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    if let Some((user, pass)) = login {
        options.set_credentials(user, pass);
    }
    AsyncClient::new(options, 10)
}

/// Polls until the first event `pick` accepts, at most 5 s.
async fn until<T>(eventloop: &mut EventLoop, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = eventloop.poll().await.expect("a live connection");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .expect("the event within 5 s")
}

/// Connects, or returns the refusal code.
async fn connect(eventloop: &mut EventLoop) -> Result<(), ConnectReturnCode> {
    match tokio::time::timeout(Duration::from_secs(5), eventloop.poll())
        .await
        .expect("an answer within 5 s")
    {
        Ok(Event::Incoming(Packet::ConnAck(_))) => Ok(()),
        Err(ConnectionError::ConnectionRefused(code)) => Err(code),
        other => panic!("unexpected {other:?}"),
    }
}

async fn round_trip(port: u16, login: Option<(&str, &str)>) {
    let (subscriber, mut sub_loop) = client("sub", port, login);
    let (publisher, mut pub_loop) = client("pub", port, login);
    connect(&mut sub_loop).await.expect("subscriber connects");
    connect(&mut pub_loop).await.expect("publisher connects");
    subscriber
        .subscribe("kit/+", QoS::ExactlyOnce)
        .await
        .expect("queued");
    until(&mut sub_loop, |e| {
        matches!(e, Event::Incoming(Packet::SubAck(_))).then_some(())
    })
    .await;
    for (qos, payload) in [
        (QoS::AtMostOnce, "q0"),
        (QoS::AtLeastOnce, "q1"),
        (QoS::ExactlyOnce, "q2"),
    ] {
        publisher
            .publish("kit/a", qos, false, payload)
            .await
            .expect("queued");
        if qos == QoS::AtLeastOnce {
            until(&mut pub_loop, |e| {
                matches!(e, Event::Incoming(Packet::PubAck(_))).then_some(())
            })
            .await;
        } else if qos == QoS::ExactlyOnce {
            until(&mut pub_loop, |e| {
                matches!(e, Event::Incoming(Packet::PubComp(_))).then_some(())
            })
            .await;
        } else {
            until(&mut pub_loop, |e| {
                matches!(e, Event::Outgoing(rumqttc::Outgoing::Publish(_))).then_some(())
            })
            .await;
        }
        let got = until(&mut sub_loop, |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some(p),
            _ => None,
        })
        .await;
        assert_eq!(&got.payload[..], payload.as_bytes());
        assert_eq!(got.qos, qos, "delivered at the publish QoS");
    }
}

#[tokio::test]
async fn the_embedded_broker_routes_every_qos_and_restarts_on_its_port() {
    let mut broker = MqttBroker::start().await.expect("broker");
    round_trip(broker.port(), None).await;
    let stats = broker.stats();
    assert_eq!(
        (
            stats.connects,
            stats.publishes,
            stats.deliveries,
            stats.subscribes
        ),
        (2, 3, 3, 1)
    );

    let port = broker.port();
    broker.stop();
    let (_c, mut refused) = client("x", port, None);
    assert!(tokio::time::timeout(Duration::from_secs(5), refused.poll())
        .await
        .expect("answer")
        .is_err());
    broker.restart().await.expect("restart");
    assert_eq!(broker.port(), port);
    round_trip(port, None).await;
    assert_eq!(broker.stats().connects, 4, "counters survive a restart");
}

#[tokio::test]
async fn the_embedded_broker_checks_credentials() {
    let broker = MqttBroker::start_with(MqttBrokerConfig {
        credentials: Some(("u".to_owned(), "p".to_owned())),
        ..MqttBrokerConfig::default()
    })
    .await
    .expect("broker");
    let (_c, mut bad) = client("bad", broker.port(), Some(("u", "x")));
    assert_eq!(
        connect(&mut bad).await,
        Err(ConnectReturnCode::BadUserNamePassword)
    );
    round_trip(broker.port(), Some(("u", "p"))).await;
    assert_eq!(broker.stats().refused, 1);
}

#[tokio::test]
async fn mosquitto_has_an_anonymous_and_a_password_listener_and_restarts() {
    let mut mosquitto = Mosquitto::start(MosquittoConfig::default())
        .await
        .expect("mosquitto");
    round_trip(mosquitto.port(), None).await;
    round_trip(mosquitto.auth_port(), Some(("loaddensity", "secret"))).await;
    let (_c, mut wrong) = client(
        "wrong",
        mosquitto.auth_port(),
        Some(("loaddensity", "nope")),
    );
    assert!(connect(&mut wrong).await.is_err(), "wrong password refused");
    let (_c, mut anonymous) = client("anon", mosquitto.auth_port(), None);
    assert!(
        connect(&mut anonymous).await.is_err(),
        "anonymous refused on the password listener"
    );

    let (port, pid) = (mosquitto.port(), mosquitto.pid().expect("running"));
    mosquitto.restart().await.expect("restart");
    assert_eq!(mosquitto.port(), port, "same port");
    let new_pid = mosquitto.pid().expect("running again");
    assert_ne!(new_pid, pid);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "old process gone"
    );
    round_trip(port, None).await;
    assert!(
        mosquitto.log().contains("mosquitto version"),
        "{}",
        mosquitto.log()
    );
    drop(mosquitto);
    assert!(
        !std::path::Path::new(&format!("/proc/{new_pid}")).exists(),
        "stopped on drop"
    );
}
