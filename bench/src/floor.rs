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
    /// NATS subjects whose bars the WebSocket floor broadcasts.
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
        // Last, so that an HTTP answer means the WebSocket side is ready.
        if let Some(addr) = args.http {
            let listener = TcpListener::bind(addr).await?;
            let body = fixed_body(args.body_bytes);
            tasks.push(tokio::spawn(http(listener, body)));
        }
        anyhow::ensure!(!tasks.is_empty(), "give --http, --ws or both");
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

/// Bars from one NATS subscription, encoded once, into the broadcast.
async fn feed(
    mut sub: async_nats::Subscriber,
    tx: broadcast::Sender<Utf8Bytes>,
) -> anyhow::Result<()> {
    while let Some(message) = sub.next().await {
        let schema = message
            .headers
            .as_ref()
            .and_then(|h| h.get(wire::SCHEMA_HEADER))
            .map(|v| v.as_str());
        let Ok(bar) = wire::decode_result::<Bar>(schema, &message.payload) else {
            continue;
        };
        let Ok(data) = serde_json::to_string(&bar) else {
            continue;
        };
        let json = format!(r#"{{"type":"bar","data":{data}}}"#);
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
