//! The packets a connection sends and reads, for either protocol version, encoded and decoded
//! by rumqttc's codec (`rumqttc::mqttbytes::v4` for MQTT 3.1.1, `rumqttc::v5::mqttbytes::v5`
//! for MQTT 5). This module only chooses the version and turns what arrives into one
//! version-independent [`Incoming`].

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::{v5, Error as V5Error};

use crate::codes::{self, Code};
use crate::session::ProtocolVersion;

/// The most room reserved at once for the rest of a packet being read: the buffer grows with
/// the bytes that actually arrive, not with the size a packet's header announces.
const RESERVE_STEP: usize = 64 * 1024;

/// What the connection asks the codec to write.
pub(crate) enum Outgoing<'a> {
    Connect {
        client_id: &'a str,
        keep_alive: u16,
        clean_session: bool,
        credentials: Option<&'a (String, String)>,
        max_packet_size: usize,
    },
    Publish {
        topic: &'a str,
        qos: u8,
        retain: bool,
        pkid: u16,
        payload: Bytes,
    },
    Subscribe {
        pkid: u16,
        filter: &'a str,
        qos: u8,
    },
    Unsubscribe {
        pkid: u16,
        filter: &'a str,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    PingReq,
    Disconnect,
}

/// A packet from the broker, version-independent; acknowledgements carry their packet id and
/// the return or reason code (a refusal as `Err`).
#[derive(Debug)]
pub(crate) enum Incoming {
    ConnAck(Result<(), Code>, Option<u16>),
    PubAck(u16, Result<u8, Code>),
    PubRec(u16, Result<u8, Code>),
    PubRel(u16),
    PubComp(u16, Result<u8, Code>),
    SubAck(u16, Result<u8, Code>),
    UnsubAck(u16, Result<u8, Code>),
    Publish {
        topic: String,
        payload: Bytes,
        qos: u8,
        pkid: u16,
    },
    PingResp,
    /// The broker ended the connection (MQTT 5 `DISCONNECT`): why, in words.
    Disconnect(String),
    /// A packet a client does not expect (`CONNECT`, `SUBSCRIBE`, ...): ignored.
    Other,
}

/// Why a packet could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// An outgoing packet larger than `max_packet_size` (or the broker's maximum).
    #[error("packet of {size} bytes exceeds max_packet_size {max}")]
    TooLarge { size: usize, max: usize },
    /// An incoming packet announcing more than `max_packet_size` bytes (after its fixed header).
    #[error("payload size limit exceeded: a packet of {size} bytes, above max_packet_size {max}")]
    IncomingTooLarge { size: usize, max: usize },
    /// The codec refused a packet.
    #[error("{0}")]
    Codec(String),
}

fn qos_v4(qos: u8) -> rumqttc::mqttbytes::QoS {
    match qos {
        0 => rumqttc::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::mqttbytes::QoS::ExactlyOnce,
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

/// Appends `packet` to `buffer`; `max` is the largest packet allowed.
pub(crate) fn write(
    version: ProtocolVersion,
    packet: Outgoing<'_>,
    buffer: &mut BytesMut,
    max: usize,
) -> Result<(), WireError> {
    match version {
        ProtocolVersion::V311 => write_v4(packet, buffer, max),
        ProtocolVersion::V5 => write_v5(packet, buffer, max),
    }
}

fn write_v4(packet: Outgoing<'_>, buffer: &mut BytesMut, max: usize) -> Result<(), WireError> {
    let packet = match packet {
        Outgoing::Connect {
            client_id,
            keep_alive,
            clean_session,
            credentials,
            max_packet_size: _,
        } => {
            let mut connect = v4::Connect::new(client_id);
            connect.keep_alive = keep_alive;
            connect.clean_session = clean_session;
            if let Some((username, password)) = credentials {
                connect.set_login(username.as_str(), password.as_str());
            }
            v4::Packet::Connect(connect)
        }
        Outgoing::Publish {
            topic,
            qos,
            retain,
            pkid,
            payload,
        } => {
            let mut publish = v4::Publish::from_bytes(topic, qos_v4(qos), payload);
            publish.retain = retain;
            publish.pkid = pkid;
            v4::Packet::Publish(publish)
        }
        Outgoing::Subscribe { pkid, filter, qos } => {
            let mut subscribe = v4::Subscribe::new(filter, qos_v4(qos));
            subscribe.pkid = pkid;
            v4::Packet::Subscribe(subscribe)
        }
        Outgoing::Unsubscribe { pkid, filter } => {
            let mut unsubscribe = v4::Unsubscribe::new(filter);
            unsubscribe.pkid = pkid;
            v4::Packet::Unsubscribe(unsubscribe)
        }
        Outgoing::PubAck(pkid) => v4::Packet::PubAck(v4::PubAck::new(pkid)),
        Outgoing::PubRec(pkid) => v4::Packet::PubRec(v4::PubRec::new(pkid)),
        Outgoing::PubRel(pkid) => v4::Packet::PubRel(v4::PubRel::new(pkid)),
        Outgoing::PubComp(pkid) => v4::Packet::PubComp(v4::PubComp::new(pkid)),
        Outgoing::PingReq => v4::Packet::PingReq,
        Outgoing::Disconnect => v4::Packet::Disconnect,
    };
    write_checked(packet.size(), max, || packet.write(buffer, max))
}

fn write_v5(packet: Outgoing<'_>, buffer: &mut BytesMut, max: usize) -> Result<(), WireError> {
    let packet = match packet {
        Outgoing::Connect {
            client_id,
            keep_alive,
            clean_session,
            credentials,
            max_packet_size,
        } => {
            let mut properties = v5::ConnectProperties::new();
            properties.max_packet_size = Some(u32::try_from(max_packet_size).unwrap_or(u32::MAX));
            let connect = v5::Connect {
                keep_alive,
                client_id: client_id.to_owned(),
                clean_start: clean_session,
                properties: Some(properties),
            };
            let login = credentials.map(|(u, p)| v5::Login::new(u.as_str(), p.as_str()));
            v5::Packet::Connect(connect, None, login)
        }
        Outgoing::Publish {
            topic,
            qos,
            retain,
            pkid,
            payload,
        } => {
            let mut publish = v5::Publish::new(topic, qos_v5(qos), payload, None);
            publish.retain = retain;
            publish.pkid = pkid;
            v5::Packet::Publish(publish)
        }
        Outgoing::Subscribe { pkid, filter, qos } => {
            let mut subscribe = v5::Subscribe::new(v5::Filter::new(filter, qos_v5(qos)), None);
            subscribe.pkid = pkid;
            v5::Packet::Subscribe(subscribe)
        }
        Outgoing::Unsubscribe { pkid, filter } => {
            let mut unsubscribe = v5::Unsubscribe::new(filter, None);
            unsubscribe.pkid = pkid;
            v5::Packet::Unsubscribe(unsubscribe)
        }
        Outgoing::PubAck(pkid) => v5::Packet::PubAck(v5::PubAck::new(pkid, None)),
        Outgoing::PubRec(pkid) => v5::Packet::PubRec(v5::PubRec::new(pkid, None)),
        Outgoing::PubRel(pkid) => v5::Packet::PubRel(v5::PubRel::new(pkid, None)),
        Outgoing::PubComp(pkid) => v5::Packet::PubComp(v5::PubComp::new(pkid, None)),
        Outgoing::PingReq => v5::Packet::PingReq(v5::PingReq),
        Outgoing::Disconnect => v5::Packet::Disconnect(v5::Disconnect::new(
            v5::DisconnectReasonCode::NormalDisconnection,
        )),
    };
    write_checked(packet.size(), max, || packet.write(buffer, None))
}

/// Writes a packet of `size` bytes with `write`, refusing it first when it is over `max`.
fn write_checked<E: std::fmt::Display>(
    size: usize,
    max: usize,
    write: impl FnOnce() -> Result<usize, E>,
) -> Result<(), WireError> {
    if size > max {
        return Err(WireError::TooLarge { size, max });
    }
    write()
        .map(|_| ())
        .map_err(|e| WireError::Codec(e.to_string()))
}

/// Reads one packet off the front of `buffer`. `Ok(None)`: not a whole packet yet; `buffer`
/// then has room reserved for more of it (the packet's size is checked against `max` first,
/// and at most [`RESERVE_STEP`] is reserved at a time).
pub(crate) fn read(
    version: ProtocolVersion,
    buffer: &mut BytesMut,
    max: usize,
) -> Result<Option<Incoming>, WireError> {
    match version {
        ProtocolVersion::V311 => match v4::Packet::read(buffer, max) {
            Ok(packet) => Ok(Some(incoming_v4(packet))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(more)) => {
                buffer.reserve(more.min(RESERVE_STEP));
                Ok(None)
            }
            Err(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                Err(WireError::IncomingTooLarge { size, max })
            }
            Err(e) => Err(WireError::Codec(e.to_string())),
        },
        ProtocolVersion::V5 => {
            let limit = Some(u32::try_from(max).unwrap_or(u32::MAX));
            match v5::Packet::read(buffer, limit) {
                Ok(packet) => Ok(Some(incoming_v5(packet))),
                Err(V5Error::InsufficientBytes(more)) => {
                    buffer.reserve(more.min(RESERVE_STEP));
                    Ok(None)
                }
                Err(V5Error::PayloadSizeLimitExceeded { pkt_size, .. }) => {
                    Err(WireError::IncomingTooLarge {
                        size: pkt_size,
                        max,
                    })
                }
                Err(e) => Err(WireError::Codec(e.to_string())),
            }
        }
    }
}

fn incoming_v4(packet: v4::Packet) -> Incoming {
    use v4::Packet as P;
    match packet {
        P::ConnAck(ack) => {
            let result = match ack.code {
                v4::ConnectReturnCode::Success => Ok(()),
                code => Err(codes::v4_connack(code)),
            };
            Incoming::ConnAck(result, None)
        }
        P::PubAck(ack) => Incoming::PubAck(ack.pkid, Ok(0)),
        P::PubRec(rec) => Incoming::PubRec(rec.pkid, Ok(0)),
        P::PubRel(rel) => Incoming::PubRel(rel.pkid),
        P::PubComp(comp) => Incoming::PubComp(comp.pkid, Ok(0)),
        P::SubAck(ack) => {
            let result = ack
                .return_codes
                .first()
                .map_or(Err((0x80, "empty SUBACK")), |c| codes::v4_suback(*c));
            Incoming::SubAck(ack.pkid, result)
        }
        P::UnsubAck(ack) => Incoming::UnsubAck(ack.pkid, Ok(0)),
        P::Publish(publish) => Incoming::Publish {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos as u8,
            pkid: publish.pkid,
        },
        P::PingResp => Incoming::PingResp,
        P::Disconnect => Incoming::Disconnect("DISCONNECT from the broker".to_owned()),
        _ => Incoming::Other,
    }
}

fn incoming_v5(packet: v5::Packet) -> Incoming {
    use v5::Packet as P;
    match packet {
        P::ConnAck(ack) => {
            let result = match ack.code {
                v5::ConnectReturnCode::Success => Ok(()),
                code => Err(codes::v5_connack(code)),
            };
            let keep_alive = ack.properties.and_then(|p| p.server_keep_alive);
            Incoming::ConnAck(result, keep_alive)
        }
        P::PubAck(ack) => Incoming::PubAck(ack.pkid, codes::v5_puback(ack.reason)),
        P::PubRec(rec) => Incoming::PubRec(rec.pkid, codes::v5_pubrec(rec.reason)),
        P::PubRel(rel) => Incoming::PubRel(rel.pkid),
        P::PubComp(comp) => Incoming::PubComp(comp.pkid, codes::v5_pubcomp(comp.reason)),
        P::SubAck(ack) => {
            let result = ack
                .return_codes
                .first()
                .map_or(Err((0x80, "empty SUBACK")), |c| codes::v5_suback(*c));
            Incoming::SubAck(ack.pkid, result)
        }
        P::UnsubAck(ack) => {
            let result = ack
                .reasons
                .first()
                .map_or(Ok(0), |c| codes::v5_unsuback(*c));
            Incoming::UnsubAck(ack.pkid, result)
        }
        P::Publish(publish) => Incoming::Publish {
            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
            payload: publish.payload,
            qos: publish.qos as u8,
            pkid: publish.pkid,
        },
        P::PingResp(_) => Incoming::PingResp,
        P::Disconnect(disconnect) => {
            let code = disconnect.reason_code;
            let text = disconnect.properties.and_then(|p| p.reason_string);
            Incoming::Disconnect(match text {
                Some(text) => format!("DISCONNECT from the broker: {code:?} ({text})"),
                None => format!("DISCONNECT from the broker: {code:?}"),
            })
        }
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_read_back_in_pieces() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let mut out = BytesMut::new();
            let publish = Outgoing::Publish {
                topic: "a/b",
                qos: 1,
                retain: false,
                pkid: 7,
                payload: Bytes::from_static(b"hello"),
            };
            write(version, publish, &mut out, 1024).expect("written");
            // A client reads its own PUBLISH as a broker would send it.
            let whole = out.split().freeze();
            let mut input = BytesMut::new();
            for (i, byte) in whole.iter().enumerate() {
                input.extend_from_slice(&[*byte]);
                let got = read(version, &mut input, 1024).expect("well formed");
                if i + 1 < whole.len() {
                    assert!(got.is_none(), "{version:?}: complete at byte {i}");
                } else {
                    match got {
                        Some(Incoming::Publish {
                            topic,
                            payload,
                            qos,
                            pkid,
                        }) => {
                            assert_eq!((topic.as_str(), &payload[..]), ("a/b", &b"hello"[..]));
                            assert_eq!((qos, pkid), (1, 7));
                        }
                        other => panic!("{version:?}: {other:?}"),
                    }
                }
            }
            assert!(input.is_empty());
        }
    }

    #[test]
    fn sizes_are_capped_before_buffering() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            // A PUBLISH header announcing 200 MB.
            let mut input = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x60][..]);
            let error = read(version, &mut input, 4096).expect_err("too large");
            assert!(
                error.to_string().contains("payload size limit exceeded"),
                "{version:?}: {error}"
            );
            assert!(input.capacity() < 4096, "nothing reserved for it");
            // One announcing 1 MB, within the limit: room grows with what arrives.
            let mut input = BytesMut::from(&[0x30, 0x80, 0x80, 0x40, 0x00, 0x01][..]);
            assert!(read(version, &mut input, 16 << 20)
                .expect("allowed")
                .is_none());
            assert!(
                input.capacity() <= 2 * RESERVE_STEP,
                "{version:?}: {} reserved",
                input.capacity()
            );
            let mut out = BytesMut::new();
            let big = Outgoing::Publish {
                topic: "t",
                qos: 0,
                retain: false,
                pkid: 0,
                payload: Bytes::from(vec![0u8; 5000]),
            };
            assert!(matches!(
                write(version, big, &mut out, 4096),
                Err(WireError::TooLarge { max: 4096, .. })
            ));
            // Garbage is an error, never a panic.
            let mut junk = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..]);
            assert!(read(version, &mut junk, 4096).is_err());
        }
    }
}
