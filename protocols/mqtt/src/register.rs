//! The one registration of this crate.

use crate::protocol::MqttProtocol;

load_density_core::register_user! {
    name: "mqtt_user",
    description: "MQTT 3.1.1 / 5 user on rumqttc: connect, publish, subscribe, unsubscribe, receive and disconnect, timed to their acknowledgements, with end-to-end latency of stamped messages",
    protocol: MqttProtocol,
}
