//! `MaybeTlsStream`: a plain stream carries bytes both ways; a TLS one refuses a host that is
//! not a server name before any handshake.

use std::sync::Arc;

use load_density_core::source_address::connect_host;
use load_density_core::stream::MaybeTlsStream;
use load_density_core::tls::{client_config, TlsSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn plain_round_trip_and_a_bad_server_name() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = [0u8; 5];
        socket.read_exact(&mut buf).await?;
        socket.write_all(&buf).await?;
        anyhow::Ok(())
    });
    let mut plain = MaybeTlsStream::Plain(connect_host("127.0.0.1", port, None).await?);
    assert!(!plain.needs_flush());
    plain.write_all(b"hello").await?;
    let mut back = [0u8; 5];
    plain.read_exact(&mut back).await?;
    assert_eq!(&back, b"hello");
    echo.await??;

    let config: Arc<_> = client_config(&TlsSettings::default())?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let tcp = connect_host("127.0.0.1", listener.local_addr()?.port(), None).await?;
    let error = MaybeTlsStream::tls(config, "not a name!", tcp)
        .await
        .expect_err("refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("\"not a name!\""), "{error}");
    Ok(())
}
