//! Replays: the dataflow again over a range of each stream, into the live
//! database or another, writing only what the range determines exactly.
//!
//! [`replay`] reads each stream's range with an ephemeral, unacknowledged
//! consumer ([`crate::source::replay_consumer`]), with the live pipeline's
//! clock-skew bound and the clock ticks it wrote, through the same job
//! (`bridge::Job`) as the live pipeline. The input is bounded: when a
//! range is read, its dataflow closes every open window. Between the
//! workers and the output task, a [`ReplayFilter`] (`edges.rs`) lets
//! through only the finals of windows the range fully covers, closed by the
//! stream's own clock, and the late events the range judges as the live run
//! did, so that identical rows replace identical rows and a live final is
//! never replaced by a partial one (see `edges.rs` for the argument).
//!
//! The reader follows each stream's clock as it hands messages on (the same
//! [`StreamClock`] as the input operator's), so the filter knows the end
//! edge before the dataflow closes the last windows. An event-time range
//! stops reading a stream once its clock has passed the range's end: no
//! later message can bring an on-time event to a window inside the range.

mod edges;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use insite_operators::StreamClock;
use insite_schemas::config::Connections;
use insite_schemas::{Inbound, TimestampMs};
use insite_sinks::clickhouse as ch;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use edges::{Edges, ReplayFilter, Withheld};

use crate::bridge::Job;
use crate::config::PipelineConfig;
use crate::output::OutputTask;
use crate::run::{jetstream, PipelineError};
use crate::source::{
    self, InputBody, InputMessage, InputSource, PullOptions, ReplayStart, StreamRange,
};

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplaySpec {
    /// The range of MARKET (`None`: skip MARKET).
    pub market: Option<StreamRange>,
    /// The range of SOCIAL (`None`: skip SOCIAL).
    pub social: Option<StreamRange>,
    /// Also write Redis and publish to DERIVED (off by default: a replay
    /// rebuilds history, and live readers want live state).
    pub hot: bool,
    /// Draw a progress bar on stderr.
    pub progress_bar: bool,
}

/// The windows whose finals a replay wrote, for one stream: those `[s, e)`
/// with `from <= s` and `e <= to` (trending lists, sentiment shifts and
/// volume spikes need exact history before them too, see `edges.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenWindows {
    /// The start edge (`TimestampMs::MIN`: the range starts at the stream's
    /// first message).
    pub from: TimestampMs,
    /// The end edge: the stream's watermark after the range's last message,
    /// or the event-time range's end if lower.
    pub to: TimestampMs,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages read.
    pub messages: u64,
    /// Events in them.
    pub events: u64,
    /// The windows written for MARKET, if it was read.
    pub market: Option<WrittenWindows>,
    /// The windows written for SOCIAL, if it was read.
    pub social: Option<WrittenWindows>,
    /// Finals left out: windows the range does not determine.
    pub withheld_finals: u64,
    /// Late events left out: their lateness depends on messages before the
    /// range.
    pub withheld_late: u64,
    /// Wall-clock duration.
    pub elapsed: Duration,
}

/// The event times (and clock ticks) a message brings its stream's clock.
fn clock_times(body: &InputBody) -> Vec<TimestampMs> {
    match body {
        InputBody::Events(Inbound::Trades(v)) => v.iter().map(|t| t.ts).collect(),
        InputBody::Events(Inbound::Quotes(v)) => v.iter().map(|q| q.ts).collect(),
        InputBody::Events(Inbound::Posts(v)) => v.iter().map(|p| p.ts).collect(),
        InputBody::Clock(ts) => vec![*ts],
        InputBody::Rejected => Vec::new(),
    }
}

/// Re-runs the dataflow over stream ranges into `services.clickhouse`'s
/// database (the live one, or another), then returns. Raw rows of the range
/// are written, and the finals of exactly the windows the range determines:
/// they equal the live run's.
pub async fn replay(
    services: &Connections,
    config: &PipelineConfig,
    spec: &ReplaySpec,
) -> Result<ReplayReport, PipelineError> {
    let started = Instant::now();
    let js = jetstream(services, "insite-replay").await?;
    let streams = &services.nats.streams;
    ch::migrate(&services.clickhouse).await?;
    let skew = config.consumer.max_clock_skew_ms.max(0);
    let lateness = config.operators.allowed_lateness_ms.max(0);

    let (fwd_tx, mut fwd_rx) = mpsc::channel::<InputMessage>(config.input_buffer.max(1));
    let mut edges = [Edges::everything(); 2];
    let mut read = [false; 2];
    let mut to_event = [None; 2];
    let mut stops: [Option<CancellationToken>; 2] = [None, None];
    let mut pulls = Vec::new();
    let mut total = 0u64;
    for (src, range) in [
        (InputSource::Market, spec.market),
        (InputSource::Social, spec.social),
    ] {
        let Some(range) = range else { continue };
        let ReplayStart {
            mut consumer,
            end_seq,
            before_max_ts,
        } = source::replay_consumer(&js, streams, src, range, skew).await?;
        let index = src.index();
        edges[index] = Edges::new(
            before_max_ts,
            range.from_event_ms,
            range.to_event_ms,
            lateness,
        );
        read[index] = true;
        to_event[index] = range.to_event_ms;
        tracing::info!(
            source = src.name(),
            start_edge = edges[index].start,
            end_edge = edges[index].end,
            "replaying"
        );
        let pending = consumer
            .info()
            .await
            .map(|info| info.num_pending)
            .unwrap_or_default();
        total += pending;
        let options = PullOptions {
            end_seq: Some(if pending == 0 { 0 } else { end_seq }),
            end_time_ms: range.to_time_ms,
            max_clock_skew_ms: Some(skew),
            ..PullOptions::default()
        };
        let stop = CancellationToken::new();
        pulls.push(tokio::spawn(source::run_consumer(
            js.clone(),
            streams.clone(),
            consumer,
            src,
            fwd_tx.clone(),
            stop.clone(),
            options,
        )));
        stops[index] = Some(stop);
    }
    drop(fwd_tx);

    // Each stream's watermark after the last message handed on: windows
    // ending past it are still open when the range ends.
    let clocks = [
        Arc::new(AtomicI64::new(TimestampMs::MIN)),
        Arc::new(AtomicI64::new(TimestampMs::MIN)),
    ];
    let withheld = Arc::new(Withheld::default());
    let mut filter = ReplayFilter::new(
        edges,
        clocks.clone(),
        &config.operators,
        Arc::clone(&withheld),
    );
    let channel = || mpsc::channel::<InputMessage>(config.input_buffer.max(1));
    let ((market_tx, market_rx), (social_tx, social_rx)) = (channel(), channel());
    let (durable_tx, _durable_rx) = watch::channel([TimestampMs::MIN; 2]);
    let output = OutputTask::connect(services, config, &js, spec.hot)
        .await?
        .with_filter(Box::new(move |output, out| match output {
            Some(output) => filter.apply(output, out),
            None => filter.finish(),
        }));
    let job = Job::start_bounded(config, market_rx, social_rx, output, durable_tx)?;
    let mut senders = [Some(market_tx), Some(social_tx)];

    let bar = spec.progress_bar.then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} messages ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let mut report = ReplayReport::default();
    let mut stream_clocks = [StreamClock::new(lateness); 2];
    while let Some(message) = fwd_rx.recv().await {
        let index = message.source.index();
        let Some(tx) = &senders[index] else {
            // That stream's event-time range is complete.
            continue;
        };
        report.messages += 1;
        report.events += message.body.len() as u64;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        for ts in clock_times(&message.body) {
            stream_clocks[index].advance(ts);
        }
        // Known to the filter before the dataflow can close a window by it.
        let watermark = stream_clocks[index].watermark();
        clocks[index].store(watermark, Ordering::SeqCst);
        if tx.send(message).await.is_err() {
            break;
        }
        if to_event[index].is_some_and(|to| watermark >= to) {
            // Every window ending by the range's end is closed: no later
            // message brings an on-time event to one.
            senders[index] = None;
            if let Some(stop) = &stops[index] {
                stop.cancel();
            }
        }
    }
    senders = [None, None];
    drop(senders);
    for stop in stops.iter().flatten() {
        stop.cancel();
    }
    for pull in pulls {
        pull.await
            .map_err(|_| PipelineError::Crashed("a replay consumer"))??;
    }
    if let Some(bar) = &bar {
        bar.finish_with_message("read");
    }
    job.finish().await?;
    let written = |index: usize| {
        read[index].then(|| WrittenWindows {
            from: edges[index].start,
            to: edges[index].end.min(clocks[index].load(Ordering::SeqCst)),
        })
    };
    report.market = written(InputSource::Market.index());
    report.social = written(InputSource::Social.index());
    report.withheld_finals = withheld.finals.load(Ordering::Relaxed);
    report.withheld_late = withheld.late.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    Ok(report)
}
