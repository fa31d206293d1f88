//! The byte stream under a WebSocket connection, and the connection's two shapes.
//!
//! tungstenite keeps its read buffer for the connection's whole life, and after a client
//! handshake that buffer is the handshake's own 4 KiB, whatever the configured size. Here
//! reads go through [`BufferedIo`] instead: its buffer exists only while the user works (the
//! user gives it back when it goes idle), and during the handshake it hands tungstenite no
//! byte past the end of the server's response head. tungstenite then holds nothing after the
//! head, so the connection can be rebuilt around the same stream with a small read buffer of
//! tungstenite's own ([`WsConn::Lean`]).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How much one read from the socket asks for.
const CHUNK: usize = 4 * 1024;

/// Where the matcher of the response head's end stands (`\r\n\r\n`, or `\n\n` as httparse
/// also accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Inside a line.
    Line,
    /// Right after a line feed.
    LineStart,
    /// A carriage return right after a line feed.
    LineStartCr,
    /// The head ended: bytes flow freely.
    Passed,
}

impl Head {
    fn next(self, byte: u8) -> Self {
        match (self, byte) {
            (Head::Passed, _) => Head::Passed,
            (Head::LineStart | Head::LineStartCr, b'\n') => Head::Passed,
            (_, b'\n') => Head::LineStart,
            (Head::LineStart, b'\r') => Head::LineStartCr,
            _ => Head::Line,
        }
    }
}

/// A stream whose reads go through a buffer that [`BufferedIo::release_idle`] gives back; while
/// it has none, a read that returns more than the caller takes makes one for the rest.
#[derive(Debug)]
pub(crate) struct BufferedIo<S> {
    inner: S,
    /// Bytes read from `inner`; `buf[start..end]` are not handed on yet. Empty (no
    /// allocation) after [`BufferedIo::release_idle`].
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// How far the end of a handshake response's head has been passed on.
    head: Head,
}

impl<S> BufferedIo<S> {
    /// Wraps `inner`; with `stop_at_head`, reads stop at the end of the first HTTP head (a
    /// client handshake over this very stream, not over TLS above it).
    pub(crate) fn new(inner: S, stop_at_head: bool) -> Self {
        Self {
            inner,
            buf: Box::default(),
            start: 0,
            end: 0,
            head: if stop_at_head {
                Head::Line
            } else {
                Head::Passed
            },
        }
    }

    /// Whether the end of the response head has been passed on (always, without
    /// `stop_at_head`).
    pub(crate) fn head_passed(&self) -> bool {
        self.head == Head::Passed
    }

    /// Gives the read buffer back when it holds no unread byte.
    pub(crate) fn release_idle(&mut self) {
        if self.start == self.end {
            self.buf = Box::default();
            self.start = 0;
            self.end = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BufferedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let taken = hand_on(&mut this.head, &this.buf[this.start..this.end], out);
            this.start += taken;
            return Poll::Ready(Ok(()));
        }
        if this.head == Head::Passed && out.remaining() >= CHUNK {
            // A large read (TLS's own buffer): no need to copy through ours.
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        if !this.buf.is_empty() {
            let mut read = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            this.start = 0;
            this.end = read.filled().len();
            let taken = hand_on(&mut this.head, &this.buf[..this.end], out);
            this.start = taken;
            return Poll::Ready(Ok(()));
        }
        // No buffer (given back when the user went idle): read into stack space, so that a
        // user waiting for a frame holds none, and make the buffer only for what the caller
        // does not take now.
        let mut space = [MaybeUninit::<u8>::uninit(); CHUNK];
        let mut read = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
        let filled = read.filled();
        let taken = hand_on(&mut this.head, filled, out);
        let rest = &filled[taken..];
        if !rest.is_empty() {
            let mut buf = vec![0; CHUNK].into_boxed_slice();
            buf[..rest.len()].copy_from_slice(rest);
            this.buf = buf;
            this.start = 0;
            this.end = rest.len();
        }
        Poll::Ready(Ok(()))
    }
}

/// Copies what `out` has room for of `waiting` (during a handshake, no byte past the end of the
/// response head); returns how many bytes it took.
fn hand_on(head: &mut Head, waiting: &[u8], out: &mut ReadBuf<'_>) -> usize {
    let mut take = waiting.len().min(out.remaining());
    if *head != Head::Passed {
        for (at, &byte) in waiting[..take].iter().enumerate() {
            *head = head.next(byte);
            if *head == Head::Passed {
                take = at + 1;
                break;
            }
        }
    }
    out.put_slice(&waiting[..take]);
    take
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BufferedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The stream as the handshake leaves it.
pub(crate) type Handshaken = WebSocketStream<MaybeTlsStream<BufferedIo<TcpStream>>>;

/// An open WebSocket connection.
// The plain connection is the usual one: inline, so that it costs no allocation of its own;
// the rare one is boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum WsConn {
    /// Plain TCP, rebuilt after the handshake: tungstenite's read buffer is the configured
    /// size, and ours is given back when idle.
    Lean(WebSocketStream<BufferedIo<TcpStream>>),
    /// As the handshake left it (TLS, or a head that did not end where expected); boxed so
    /// that the TLS state does not size every plain connection.
    Handshaken(Box<Handshaken>),
}

impl WsConn {
    /// Sends a close frame (as [`WebSocketStream::close`]).
    pub(crate) async fn close(&mut self) -> Result<(), Error> {
        match self {
            WsConn::Lean(ws) => ws.close(None).await,
            WsConn::Handshaken(ws) => ws.close(None).await,
        }
    }

    /// Gives back the read buffer when it holds no unread byte.
    pub(crate) fn release_idle(&mut self) {
        match self {
            WsConn::Lean(ws) => ws.get_mut().release_idle(),
            WsConn::Handshaken(ws) => match ws.get_mut() {
                MaybeTlsStream::Plain(io) => io.release_idle(),
                MaybeTlsStream::Rustls(tls) => tls.get_mut().0.release_idle(),
                _ => {}
            },
        }
    }
}

impl Stream for WsConn {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            WsConn::Lean(ws) => Pin::new(ws).poll_next(cx),
            WsConn::Handshaken(ws) => Pin::new(ws.as_mut()).poll_next(cx),
        }
    }
}

impl Sink<Message> for WsConn {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.get_mut() {
            WsConn::Lean(ws) => Pin::new(ws).poll_ready(cx),
            WsConn::Handshaken(ws) => Pin::new(ws.as_mut()).poll_ready(cx),
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        match self.get_mut() {
            WsConn::Lean(ws) => Pin::new(ws).start_send(item),
            WsConn::Handshaken(ws) => Pin::new(ws.as_mut()).start_send(item),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.get_mut() {
            WsConn::Lean(ws) => Pin::new(ws).poll_flush(cx),
            WsConn::Handshaken(ws) => Pin::new(ws.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.get_mut() {
            WsConn::Lean(ws) => Pin::new(ws).poll_close(cx),
            WsConn::Handshaken(ws) => Pin::new(ws.as_mut()).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Head;

    fn ends_at(bytes: &[u8]) -> Option<usize> {
        let mut head = Head::Line;
        bytes.iter().position(|&b| {
            head = head.next(b);
            head == Head::Passed
        })
    }

    #[test]
    fn the_head_ends_at_the_empty_line() {
        let crlf = b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
        assert_eq!(ends_at(crlf), Some(crlf.len() - 5));
        let lf = b"HTTP/1.1 101 Switching\nUpgrade: websocket\n\n\x81";
        assert_eq!(ends_at(lf), Some(lf.len() - 2));
        assert_eq!(ends_at(b"HTTP/1.1 101 Switching\r\nA: b\r\n"), None);
        assert_eq!(ends_at(b"HTTP/1.1 101 x\r\nA: \r\r\n"), None);
    }
}
