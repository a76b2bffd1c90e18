//! The live chart page in a real headless Chromium (Debian's, driven by its
//! chromedriver through WebDriver): the page loads, a candle appears, then
//! changes as the pipeline publishes an updated bar; a screenshot is saved
//! to `target/query-browser/chart.png`.
//!
//! Chromium and chromedriver are installed by `testkit/browser/install-chromium.sh`
//! when missing; if that is impossible (no root, no package mirror) the test
//! says so loudly and skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use insite_query::QueryConfig;
use insite_schemas::{Finality, Interval};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_sinks::redis::{HotUpdate, RedisSink, RedisSinkConfig};
use insite_testkit::fixtures::bar;
use insite_testkit::service::start_query;
use insite_testkit::wait::eventually;
use insite_testkit::{workspace_root, TestEnv};

/// Kills chromedriver (and with it the browser) when the test ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Paths of chromium and chromedriver, installed if missing.
fn browser() -> Option<(String, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/install-chromium.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            Some((lines.next()?.to_owned(), lines.next()?.to_owned()))
        }
        other => {
            eprintln!(
                "\n************************************************************\n\
                 SKIPPED query_browser: Chromium/chromedriver could not be installed\n\
                 by {} ({other:?})\n\
                 ************************************************************\n",
                script.display()
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_page_shows_a_live_candle() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let env = TestEnv::new("query_browser");
    let js = env.prepared().await;

    // The pipeline's state before the page opens: AAPL's current candle.
    let now = insite_schemas::time::now_ms();
    let start = Interval::MINUTE.window_start(now);
    let mut sink = RedisSink::connect(&env.connections.redis, RedisSinkConfig::default())
        .await
        .unwrap();
    let current_bar = |close| {
        bar("AAPL", Interval::MINUTE, start)
            .close(close)
            .finality(Finality::Provisional)
            .build()
    };
    sink.push(HotUpdate::Bar(
        bar("AAPL", Interval::MINUTE, start - 60_000)
            .close(10.5)
            .build(),
    ))
    .unwrap();
    sink.push(HotUpdate::Bar(current_bar(11.0))).unwrap();
    sink.flush().await.unwrap();
    let service = start_query(&env, QueryConfig::default()).await;

    let port = insite_local::free_ports(1).unwrap()[0];
    let driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800"
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = eventually(Duration::from_secs(60), async || {
        ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .ok()
    })
    .await
    .expect("chromedriver accepts a session");

    client
        .goto(&service.url("/?symbol=AAPL&interval=1m"))
        .await
        .unwrap();
    // The candle from the HTTP API appears.
    let candle = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#last-candle[data-state='candle']"))
        .await
        .unwrap();
    assert_eq!(
        candle.attr("data-close").await.unwrap().as_deref(),
        Some("11")
    );
    assert_eq!(
        candle.attr("data-time").await.unwrap(),
        Some(start.to_string())
    );
    client
        .find(Locator::Css("#price canvas"))
        .await
        .expect("the chart draws on a canvas");
    // Both candles (the last final one and the current one) are on the chart.
    let drawn = client
        .execute("return window.insiteChart.candles.data().length", vec![])
        .await
        .unwrap();
    assert_eq!(drawn, serde_json::json!(2));

    // New trades: the pipeline publishes the window's updated bar. Until the
    // page's WebSocket subscription is in place a publish can go unseen, so
    // the update is re-published until the page shows it.
    let mut publisher = DerivedPublisher::new(js, env.connections.nats.streams.clone(), 16);
    let changed = eventually(Duration::from_secs(60), async || {
        publisher
            .publish(&Derived::Bar(current_bar(13.25)))
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        // Give the page a moment to draw it before looking.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let close = client
            .find(Locator::Id("last-candle"))
            .await
            .unwrap()
            .attr("data-close")
            .await
            .unwrap();
        close.as_deref() == Some("13.25")
    })
    .await;
    assert!(
        changed.is_ok(),
        "the candle never changed to the published close"
    );
    let text = client
        .find(Locator::Id("last-candle"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("C 13.25") && text.contains("(live)"),
        "{text}"
    );
    let status = client
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "live");

    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = workspace_root().join("target").join("query-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chart.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());

    client.close().await.unwrap();
    drop(driver);
    service.stop().await;
}
