//! The HTTP transport under every ClickHouse client insite makes: a bound on
//! connecting and a bound on waiting for the server.
//!
//! The `clickhouse` crate has no client-side timeouts of its own for queries
//! (`send_timeout`/`receive_timeout` are *server* settings, and
//! `Insert::with_timeouts` covers only inserts), and its default transport
//! waits forever on a server that accepts a connection and never answers.
//! So the client is built over this transport ([`http_client`]):
//!
//! - **connect**: resolving the host and opening the TCP connection take at
//!   most `connect_timeout` (`ClickHouseConfig::connect_timeout_ms`);
//! - **read/write**: on an open connection, a read that receives nothing, or
//!   a write the server takes nothing of, for `io_timeout`
//!   (`ClickHouseConfig::request_timeout_ms`) fails the request. Every byte
//!   sent restarts the wait for the answer, so the bound is the server's
//!   silence: for an `INSERT`, the time from its last row to the answer that
//!   it is written; for a `SELECT`, the time between two chunks.
//!
//! Both fail with an [`std::io::ErrorKind::TimedOut`] I/O error inside the
//! client's [`clickhouse::error::Error::Network`], which
//! [`super::classify`] calls retryable and [`super::is_timeout`] recognizes.
//! Idle pooled connections are dropped after two seconds (as the
//! `clickhouse` crate's default transport does; ClickHouse closes them after
//! three), before a read timeout could end them.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Body;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// TCP keep-alive probes on idle connections (as the crate's default).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// How long an idle connection stays pooled: less than ClickHouse's own
/// keep-alive timeout (3 s by default), as the crate's default.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// An HTTP client whose connections time out: `connect_timeout` to connect,
/// `io_timeout` of silence on an open connection. For
/// `clickhouse::Client::with_http_client` (which fixes the body type).
pub(super) fn http_client<B>(
    connect_timeout: Duration,
    io_timeout: Duration,
) -> HyperClient<TimeoutConnector, B>
where
    B: Body + Send,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_connect_timeout(Some(connect_timeout));
    let connector = TimeoutConnector {
        http,
        connect_timeout,
        io_timeout,
    };
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// An [`HttpConnector`] whose connecting (DNS included) is bounded, and
/// whose connections time out when the server goes silent.
#[derive(Debug, Clone)]
pub(super) struct TimeoutConnector {
    /// The plain connector.
    http: HttpConnector,
    /// The longest wait for a connection.
    connect_timeout: Duration,
    /// The longest silence on an open connection.
    io_timeout: Duration,
}

impl tower_service::Service<Uri> for TimeoutConnector {
    type Response = TimeoutIo<TokioIo<TcpStream>>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let (connect_timeout, io_timeout) = (self.connect_timeout, self.io_timeout);
        Box::pin(async move {
            match tokio::time::timeout(connect_timeout, connecting).await {
                Ok(Ok(io)) => Ok(TimeoutIo::new(io, io_timeout)),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connecting to ClickHouse took longer than {} ms",
                        connect_timeout.as_millis()
                    ),
                )
                .into()),
            }
        })
    }
}

/// The longest an I/O operation may stay pending.
#[derive(Debug)]
struct Deadline {
    /// The bound.
    timeout: Duration,
    /// The timer (allocated once per connection, reset when armed).
    sleep: Pin<Box<Sleep>>,
    /// Whether the timer runs: the operation is pending.
    armed: bool,
    /// What is waited for, for the error.
    waiting_for: &'static str,
}

impl Deadline {
    fn new(timeout: Duration, waiting_for: &'static str) -> Self {
        Self {
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
            waiting_for,
        }
    }

    /// The operation made progress (or failed): the next wait starts anew.
    fn disarm(&mut self) {
        self.armed = false;
    }

    /// The operation is pending: starts the timer if it is not running, and
    /// fails once it has run out.
    fn poll_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            self.sleep.as_mut().reset(Instant::now() + self.timeout);
            self.armed = true;
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = false;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "ClickHouse {} for {} ms",
                        self.waiting_for,
                        self.timeout.as_millis()
                    ),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A connection whose reads and writes fail after a silence of the timeout.
#[derive(Debug)]
pub(super) struct TimeoutIo<T> {
    /// The connection.
    inner: T,
    /// Bounds a pending read.
    read: Deadline,
    /// Bounds a pending write or flush.
    write: Deadline,
}

impl<T> TimeoutIo<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            read: Deadline::new(timeout, "sent nothing"),
            write: Deadline::new(timeout, "took nothing"),
        }
    }

    /// Bytes went out: the server's time to answer starts now.
    fn wrote(&mut self, n: usize) {
        self.write.disarm();
        if n > 0 {
            self.read.disarm();
        }
    }
}

impl<T: Read + Unpin> Read for TimeoutIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => this.read.poll_pending(cx),
            ready => {
                this.read.disarm();
                ready
            }
        }
    }
}

impl<T: Write + Unpin> Write for TimeoutIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.write.poll_pending(cx),
            Poll::Ready(result) => {
                this.wrote(*result.as_ref().unwrap_or(&0));
                Poll::Ready(result)
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.write.poll_pending(cx),
            Poll::Ready(result) => {
                this.wrote(*result.as_ref().unwrap_or(&0));
                Poll::Ready(result)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.write.poll_pending(cx),
            ready => {
                this.write.disarm();
                ready
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.write.poll_pending(cx),
            ready => {
                this.write.disarm();
                ready
            }
        }
    }
}

impl<T: Connection> Connection for TimeoutIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: the client end wrapped, the server end plain.
    async fn pair(timeout: Duration) -> (TokioIo<TimeoutIo<TokioIo<TcpStream>>>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let client = TimeoutIo::new(TokioIo::new(client.unwrap()), timeout);
        (TokioIo::new(client), server.unwrap().0)
    }

    #[tokio::test]
    async fn a_silent_peer_fails_the_read() {
        let (mut client, _server) = pair(Duration::from_millis(50)).await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut byte))
            .await
            .expect("the read times out by itself");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_peer_that_answers_in_time_is_read() {
        let (mut client, mut server) = pair(Duration::from_millis(500)).await;
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }
}
