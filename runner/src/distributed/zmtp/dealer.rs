//! The worker's DEALER: one connection to the master, with the worker's identity.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::codec;
use super::{ZmtpError, HANDSHAKE_TIMEOUT};

/// How long one message to the master may take to leave.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the master sends.
pub(crate) struct DealerReader {
    reader: BufReader<OwnedReadHalf>,
    max_message_size: usize,
}

/// What goes to the master.
pub(crate) struct DealerWriter {
    writer: OwnedWriteHalf,
}

/// Connects to the ROUTER at `address` (`host:port`) as `identity`, within `connect_timeout`
/// for the TCP connection and [`HANDSHAKE_TIMEOUT`] for the ZMTP handshake.
pub(crate) async fn connect(
    address: &str,
    identity: &[u8],
    max_message_size: usize,
    connect_timeout: Duration,
) -> Result<(DealerReader, DealerWriter), ZmtpError> {
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ZmtpError::Timeout(connect_timeout, "accept the connection"))??;
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(30));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let (read_half, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let handshake = async {
        writer.write_all(&codec::greeting()).await?;
        codec::read_greeting(&mut reader).await?;
        writer.write_all(&codec::ready("DEALER", identity)).await?;
        let ready = codec::read_ready(&mut reader).await?;
        if !matches!(ready.socket_type.as_str(), "ROUTER" | "REP" | "DEALER") {
            return Err(ZmtpError::SocketType {
                peer: ready.socket_type,
                ours: "DEALER",
            });
        }
        Ok(())
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| ZmtpError::Timeout(HANDSHAKE_TIMEOUT, "complete the ZMTP handshake"))??;
    Ok((
        DealerReader {
            reader,
            max_message_size,
        },
        DealerWriter { writer },
    ))
}

impl DealerReader {
    /// The next message's frames.
    pub(crate) async fn recv(&mut self) -> Result<Vec<Bytes>, ZmtpError> {
        codec::read_message(&mut self.reader, self.max_message_size).await
    }
}

impl DealerWriter {
    /// Sends `payload` as a one-frame message.
    pub(crate) async fn send(&mut self, payload: &[u8]) -> Result<(), ZmtpError> {
        let message = codec::encode_message(&[payload]);
        tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(&message))
            .await
            .map_err(|_| ZmtpError::Timeout(WRITE_TIMEOUT, "take a message"))??;
        Ok(())
    }
}
