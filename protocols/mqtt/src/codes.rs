//! MQTT return and reason codes as numbers and words.

use rumqttc::v5::mqttbytes::v5;

/// A refusal: the code and what it means.
pub(crate) type Code = (u8, &'static str);

/// CONNACK return codes of MQTT 3.1.1.
pub(crate) fn v4_connack(code: rumqttc::ConnectReturnCode) -> Code {
    use rumqttc::ConnectReturnCode as C;
    match code {
        C::Success => (0, "accepted"),
        C::RefusedProtocolVersion => (1, "unacceptable protocol version"),
        C::BadClientId => (2, "identifier rejected"),
        C::ServiceUnavailable => (3, "server unavailable"),
        C::BadUserNamePassword => (4, "bad user name or password"),
        C::NotAuthorized => (5, "not authorized"),
    }
}

/// CONNACK reason codes of MQTT 5.
pub(crate) fn v5_connack(code: v5::ConnectReturnCode) -> Code {
    use v5::ConnectReturnCode as C;
    match code {
        C::Success => (0x00, "success"),
        C::RefusedProtocolVersion => (0x01, "unacceptable protocol version"),
        C::BadClientId => (0x02, "identifier rejected"),
        C::ServiceUnavailable => (0x03, "server unavailable"),
        C::UnspecifiedError => (0x80, "unspecified error"),
        C::MalformedPacket => (0x81, "malformed packet"),
        C::ProtocolError => (0x82, "protocol error"),
        C::ImplementationSpecificError => (0x83, "implementation specific error"),
        C::UnsupportedProtocolVersion => (0x84, "unsupported protocol version"),
        C::ClientIdentifierNotValid => (0x85, "client identifier not valid"),
        C::BadUserNamePassword => (0x86, "bad user name or password"),
        C::NotAuthorized => (0x87, "not authorized"),
        C::ServerUnavailable => (0x88, "server unavailable"),
        C::ServerBusy => (0x89, "server busy"),
        C::Banned => (0x8A, "banned"),
        C::BadAuthenticationMethod => (0x8C, "bad authentication method"),
        C::TopicNameInvalid => (0x90, "topic name invalid"),
        C::PacketTooLarge => (0x95, "packet too large"),
        C::QuotaExceeded => (0x97, "quota exceeded"),
        C::PayloadFormatInvalid => (0x99, "payload format invalid"),
        C::RetainNotSupported => (0x9A, "retain not supported"),
        C::QoSNotSupported => (0x9B, "QoS not supported"),
        C::UseAnotherServer => (0x9C, "use another server"),
        C::ServerMoved => (0x9D, "server moved"),
        C::ConnectionRateExceeded => (0x9F, "connection rate exceeded"),
    }
}

/// A SUBACK return code of MQTT 3.1.1: the granted QoS, or the failure.
pub(crate) fn v4_suback(code: rumqttc::SubscribeReasonCode) -> Result<u8, Code> {
    match code {
        rumqttc::SubscribeReasonCode::Success(qos) => Ok(qos as u8),
        rumqttc::SubscribeReasonCode::Failure => Err((0x80, "failure")),
    }
}

/// A SUBACK reason code of MQTT 5: the granted QoS, or the failure.
pub(crate) fn v5_suback(code: v5::SubscribeReasonCode) -> Result<u8, Code> {
    use v5::SubscribeReasonCode as C;
    match code {
        C::Success(qos) => Ok(qos as u8),
        C::Failure => Err((0x80, "failure")),
        C::Unspecified => Err((0x80, "unspecified error")),
        C::ImplementationSpecific => Err((0x83, "implementation specific error")),
        C::NotAuthorized => Err((0x87, "not authorized")),
        C::TopicFilterInvalid => Err((0x8F, "topic filter invalid")),
        C::PkidInUse => Err((0x91, "packet identifier in use")),
        C::QuotaExceeded => Err((0x97, "quota exceeded")),
        C::SharedSubscriptionsNotSupported => Err((0x9E, "shared subscriptions not supported")),
        C::SubscriptionIdNotSupported => Err((0xA1, "subscription identifiers not supported")),
        C::WildcardSubscriptionsNotSupported => Err((0xA2, "wildcard subscriptions not supported")),
    }
}

/// A PUBACK reason code of MQTT 5: the success code, or the refusal.
pub(crate) fn v5_puback(code: v5::PubAckReason) -> Result<u8, Code> {
    use v5::PubAckReason as C;
    match code {
        C::Success => Ok(0x00),
        C::NoMatchingSubscribers => Ok(0x10),
        C::UnspecifiedError => Err((0x80, "unspecified error")),
        C::ImplementationSpecificError => Err((0x83, "implementation specific error")),
        C::NotAuthorized => Err((0x87, "not authorized")),
        C::TopicNameInvalid => Err((0x90, "topic name invalid")),
        C::PacketIdentifierInUse => Err((0x91, "packet identifier in use")),
        C::QuotaExceeded => Err((0x97, "quota exceeded")),
        C::PayloadFormatInvalid => Err((0x99, "payload format invalid")),
    }
}

/// A PUBREC reason code of MQTT 5: the success code, or the refusal.
pub(crate) fn v5_pubrec(code: v5::PubRecReason) -> Result<u8, Code> {
    use v5::PubRecReason as C;
    match code {
        C::Success => Ok(0x00),
        C::NoMatchingSubscribers => Ok(0x10),
        C::UnspecifiedError => Err((0x80, "unspecified error")),
        C::ImplementationSpecificError => Err((0x83, "implementation specific error")),
        C::NotAuthorized => Err((0x87, "not authorized")),
        C::TopicNameInvalid => Err((0x90, "topic name invalid")),
        C::PacketIdentifierInUse => Err((0x91, "packet identifier in use")),
        C::QuotaExceeded => Err((0x97, "quota exceeded")),
        C::PayloadFormatInvalid => Err((0x99, "payload format invalid")),
    }
}

/// A PUBCOMP reason code of MQTT 5.
pub(crate) fn v5_pubcomp(code: v5::PubCompReason) -> Result<u8, Code> {
    match code {
        v5::PubCompReason::Success => Ok(0x00),
        v5::PubCompReason::PacketIdentifierNotFound => Err((0x92, "packet identifier not found")),
    }
}

/// An UNSUBACK reason code of MQTT 5.
pub(crate) fn v5_unsuback(code: v5::UnsubAckReason) -> Result<u8, Code> {
    use v5::UnsubAckReason as C;
    match code {
        C::Success => Ok(0x00),
        C::NoSubscriptionExisted => Ok(0x11),
        C::UnspecifiedError => Err((0x80, "unspecified error")),
        C::ImplementationSpecificError => Err((0x83, "implementation specific error")),
        C::NotAuthorized => Err((0x87, "not authorized")),
        C::TopicFilterInvalid => Err((0x8F, "topic filter invalid")),
        C::PacketIdentifierInUse => Err((0x91, "packet identifier in use")),
    }
}
