//! MQTT brokers for tests: [`MqttBroker`], an embedded MQTT 3.1.1 broker in the test process,
//! and [`Mosquitto`], the real `mosquitto` (Debian package) started on free loopback ports.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use load_density_testkit::{Mosquitto, MosquittoConfig, MqttBroker};
//!
//! let embedded = MqttBroker::start().await?;
//! let broker = embedded.broker(); // "127.0.0.1:<port>"
//! assert_eq!(embedded.stats().publishes, 0);
//!
//! let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
//! let anonymous = mosquitto.broker(); // allow_anonymous true
//! let authenticated = mosquitto.auth_broker(); // password_file, allow_anonymous false
//! # Ok(())
//! # }
//! ```

mod broker;
mod mosquitto;

pub use broker::{MqttBroker, MqttBrokerConfig, MqttBrokerStats};
pub use mosquitto::{Mosquitto, MosquittoConfig};
