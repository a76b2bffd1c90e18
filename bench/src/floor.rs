//! `insite-bench floor`: the floors that the query benchmark measures the
//! service against, in the same run, under the same load generator, as a
//! process of their own (so that its CPU is its own and it can be pinned
//! to the service's cores).
//!
//! - **HTTP**: a bare hyper HTTP/1.1 server answering every GET with one
//!   fixed JSON body (`--body-bytes`, the size of the service's latest-bar
//!   answer): no routing, no store, no middleware.
//! - **WebSocket**: a bare tokio-tungstenite broadcast server. It takes the
//!   same NATS subjects as the service's hub (`--subject`), decodes each
//!   bar and encodes it to JSON once (`{"type":"bar","data":…}`, the
//!   message the service sends), and hands that one buffer to every client
//!   through a `tokio::sync::broadcast` channel; each client has a task
//!   that answers its first frame (the subscribe op) with a `subscribed`
//!   frame and then writes every broadcast message (send = write + flush).
//! - **Raw WebSocket** (`--ws-raw`): the least a fan-out can do on this
//!   machine. The handshake and the subscribe op go through tungstenite;
//!   then the client's TCP socket joins one list. For each bar the frame
//!   (header and JSON) is built once, since a server's frames are not
//!   masked, and the one feed task writes those same bytes to every
//!   socket with one non-blocking `write` each: no task, queue or wake-up
//!   per client. A socket that cannot take a whole frame at once is
//!   dropped. What is left is the kernel's cost of a loopback TCP send.
//!
//! It serves until its parent kills it.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use insite_config::InsiteConfig;
use insite_schemas::{wire, Bar};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Arguments of `insite-bench floor`.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Where the HTTP floor listens.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Size of the fixed HTTP answer, in bytes.
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
    /// Where the WebSocket floor listens.
    #[arg(long)]
    ws: Option<SocketAddr>,
    /// Where the raw WebSocket floor listens.
    #[arg(long)]
    ws_raw: Option<SocketAddr>,
    /// NATS subjects whose bars the WebSocket floors broadcast.
    #[arg(long)]
    subject: Vec<String>,
}

/// Runs `insite-bench floor` until killed.
pub fn run(config: &InsiteConfig, args: FloorArgs) -> anyhow::Result<()> {
    crate::runtime()?.block_on(async {
        let mut tasks = Vec::new();
        if let Some(addr) = args.ws {
            let listener = TcpListener::bind(addr).await?;
            let nats = insite_sinks::nats::connect(&config.nats, "insite-bench-floor").await?;
            let (tx, _) = broadcast::channel::<Utf8Bytes>(1_024);
            for subject in &args.subject {
                let sub = nats.subscribe(subject.clone()).await?;
                tasks.push(tokio::spawn(feed(sub, tx.clone())));
            }
            nats.flush().await?;
            tasks.push(tokio::spawn(ws(listener, tx)));
        }
        if let Some(addr) = args.ws_raw {
            let listener = TcpListener::bind(addr).await?;
            let nats = insite_sinks::nats::connect(&config.nats, "insite-bench-floor-raw").await?;
            let clients = RawClients::default();
            for subject in &args.subject {
                let sub = nats.subscribe(subject.clone()).await?;
                tasks.push(tokio::spawn(feed_raw(sub, clients.clone())));
            }
            nats.flush().await?;
            tasks.push(tokio::spawn(ws_raw(listener, clients)));
        }
        // Last, so that an HTTP answer means the WebSocket side is ready.
        if let Some(addr) = args.http {
            let listener = TcpListener::bind(addr).await?;
            let body = fixed_body(args.body_bytes);
            tasks.push(tokio::spawn(http(listener, body)));
        }
        anyhow::ensure!(!tasks.is_empty(), "give --http, --ws, --ws-raw or several");
        for t in tasks {
            t.await??;
        }
        Ok(())
    })
}

/// A JSON object of exactly `n` bytes (at least `{"x":""}`).
fn fixed_body(n: usize) -> Bytes {
    let pad = n.saturating_sub(8);
    Bytes::from(format!("{{\"x\":\"{}\"}}", "a".repeat(pad)))
}

/// The HTTP floor: every request answered with `body`.
async fn http(listener: TcpListener, body: Bytes) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move {
                    hyper::Response::builder()
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(body))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The JSON message of a bar, as the service pushes it, or `None` for a
/// NATS message that is not a bar.
fn bar_json(message: &async_nats::Message) -> Option<String> {
    let schema = message
        .headers
        .as_ref()
        .and_then(|h| h.get(wire::SCHEMA_HEADER))
        .map(|v| v.as_str());
    let bar = wire::decode_result::<Bar>(schema, &message.payload).ok()?;
    let data = serde_json::to_string(&bar).ok()?;
    Some(format!(r#"{{"type":"bar","data":{data}}}"#))
}

/// Bars from one NATS subscription, encoded once, into the broadcast.
async fn feed(
    mut sub: async_nats::Subscriber,
    tx: broadcast::Sender<Utf8Bytes>,
) -> anyhow::Result<()> {
    while let Some(message) = sub.next().await {
        let Some(json) = bar_json(&message) else {
            continue;
        };
        // No receivers yet is not an error.
        let _ = tx.send(Utf8Bytes::from(json));
    }
    Ok(())
}

/// The WebSocket floor: one task per client.
async fn ws(listener: TcpListener, tx: broadcast::Sender<Utf8Bytes>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let rx = tx.subscribe();
        tokio::spawn(async move {
            let _ = client(stream, rx).await;
        });
    }
}

/// One WebSocket client: its subscribe op answered, then every broadcast.
async fn client(
    stream: tokio::net::TcpStream,
    mut rx: broadcast::Receiver<Utf8Bytes>,
) -> anyhow::Result<()> {
    let mut ws = tokio_tungstenite::accept_async(stream)
        .await
        .context("WebSocket handshake")?;
    if let Some(Ok(Message::Text(_))) = ws.next().await {
        ws.send(Message::text(r#"{"type":"subscribed","topics":["bars"]}"#))
            .await?;
    }
    // Only what arrives from now on, as for the service's clients.
    rx = rx.resubscribe();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(text) => ws.send(Message::Text(text)).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The raw floor's subscribed clients: their sockets, written in turn.
type RawClients = std::sync::Arc<std::sync::Mutex<Vec<tokio::net::TcpStream>>>;

/// An unmasked WebSocket text frame holding `payload` (RFC 6455 §5.2).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81); // FIN, text
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

/// Bars from one NATS subscription, each framed once and written to every
/// raw client with one non-blocking write; a client that cannot take the
/// whole frame at once is dropped.
async fn feed_raw(mut sub: async_nats::Subscriber, clients: RawClients) -> anyhow::Result<()> {
    while let Some(message) = sub.next().await {
        let Some(json) = bar_json(&message) else {
            continue;
        };
        let frame = text_frame(json.as_bytes());
        let Ok(mut clients) = clients.lock() else {
            anyhow::bail!("raw client list poisoned");
        };
        clients.retain(|socket| matches!(socket.try_write(&frame), Ok(n) if n == frame.len()));
    }
    Ok(())
}

/// The raw floor's listener: a tungstenite handshake and subscribe answer
/// per client, then its socket joins `clients`.
async fn ws_raw(listener: TcpListener, clients: RawClients) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let clients = clients.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            if let Some(Ok(Message::Text(_))) = ws.next().await {
                if ws
                    .send(Message::text(r#"{"type":"subscribed","topics":["bars"]}"#))
                    .await
                    .is_err()
                {
                    return;
                }
                if let Ok(mut clients) = clients.lock() {
                    clients.push(ws.into_inner());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_carry_their_length() {
        for n in [0, 1, 125, 126, 65_535, 65_536] {
            let payload = vec![b'x'; n];
            let frame = text_frame(&payload);
            assert_eq!(frame[0], 0x81);
            let (len, header) = match frame[1] {
                126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
                127 => (
                    u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                short => (usize::from(short), 2),
            };
            assert_eq!(len, n);
            assert_eq!(frame.len(), header + n);
        }
    }
}
