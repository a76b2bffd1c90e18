//! The HTTP/1.1 load generator: plain GETs on keep-alive connections (one
//! per task, reconnected after a failure), latencies in HDR histograms, and
//! the target process's CPU and RSS over each phase.
//!
//! A phase runs either a fixed number of tasks for a fixed time
//! ([`http_phase`]: closed loop, or open loop at a fixed rate with latency
//! from each request's scheduled time, so that a stall is not hidden by the
//! generator waiting), or a few tasks over a fixed list of requests
//! ([`queue_phase`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};

use crate::procstat::{cpu_percent, Sample};

/// The path of request `n` of task `task`.
pub type Paths = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

/// The header of the table of [`Phase::line`]s.
pub const HEADER: &str = "| phase | req/s | avg ms | p50 ms | p95 ms | p99 ms | max ms | requests | 4xx | 5xx | errors | service CPU | service RSS MiB | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// Outcome of one HTTP phase.
#[derive(Debug)]
pub struct Phase {
    name: String,
    hist: Histogram<u64>,
    ok: u64,
    c4xx: u64,
    c5xx: u64,
    errors: u64,
    elapsed: Duration,
    cpu: f64,
    rss_mib: f64,
    /// The load generator's (this process's) CPU over the phase, in % of
    /// one core.
    generator_cpu: f64,
    /// The load generator's RSS at the end, in MiB.
    generator_rss_mib: f64,
}

impl Phase {
    /// Answers per second.
    pub fn rate(&self) -> f64 {
        let total = self.ok + self.c4xx + self.c5xx;
        total as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q`, in milliseconds.
    pub fn ms_at(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1_000.0
    }

    /// The mean latency, in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.hist.mean() / 1_000.0
    }

    /// Shares of the requests sent that got 2xx/3xx, 4xx, 5xx and no
    /// answer (a transport error), in %.
    pub fn shares(&self) -> [f64; 4] {
        let sent = (self.ok + self.c4xx + self.c5xx + self.errors).max(1) as f64;
        [self.ok, self.c4xx, self.c5xx, self.errors].map(|n| 100.0 * n as f64 / sent)
    }

    /// The service's CPU over the phase (% of one core) and its RSS at
    /// the end (MiB).
    pub fn service_usage(&self) -> (f64, f64) {
        (self.cpu, self.rss_mib)
    }

    /// The load generator's (this process's) CPU over the phase (% of one
    /// core) and its RSS at the end (MiB).
    pub fn generator_usage(&self) -> (f64, f64) {
        (self.generator_cpu, self.generator_rss_mib)
    }

    /// One row of the table under [`HEADER`].
    pub fn line(&self) -> String {
        let us = |q: f64| self.hist.value_at_quantile(q) as f64 / 1_000.0;
        let total = self.ok + self.c4xx + self.c5xx;
        format!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} | {:.0}% | {:.0} | {:.0}% |",
            self.name,
            total as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.hist.mean() / 1_000.0,
            us(0.5),
            us(0.95),
            us(0.99),
            self.hist.max() as f64 / 1_000.0,
            total,
            self.c4xx,
            self.c5xx,
            self.errors,
            self.cpu,
            self.rss_mib,
            self.generator_cpu
        )
    }
}

/// Answers by status class, shared by the tasks of one phase.
#[derive(Debug, Default)]
pub struct Counts {
    /// 2xx and 3xx.
    pub ok: AtomicU64,
    /// 4xx.
    pub c4xx: AtomicU64,
    /// 5xx.
    pub c5xx: AtomicU64,
    /// Transport errors (no answer).
    pub errors: AtomicU64,
}

/// One keep-alive connection.
pub type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Opens a keep-alive connection to `addr` (no Nagle delay).
pub async fn connection(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One GET of `path` on `sender`; records its status class. `false` if the
/// connection is no longer usable.
pub async fn request(sender: &mut Sender, addr: SocketAddr, path: &str, counts: &Counts) -> bool {
    if sender.ready().await.is_err() {
        counts.errors.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let Ok(req) = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
    else {
        counts.errors.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let drained = resp.into_body().collect().await.is_ok();
            let counter = match status {
                200..=399 => &counts.ok,
                400..=499 => &counts.c4xx,
                _ => &counts.c5xx,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drained
        }
        Err(_) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Whether one GET of `path` on a new connection is answered with 2xx/3xx.
pub async fn probe(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut sender) = connection(addr).await else {
        return false;
    };
    let counts = Counts::default();
    request(&mut sender, addr, path, &counts).await && counts.ok.load(Ordering::Relaxed) == 1
}

/// The body of a GET.
pub async fn get_text(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut sender = connection(addr).await?;
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let body = sender
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

/// An empty latency histogram: microseconds, 1 µs to 60 s, 3 significant
/// digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// `elapsed` in whole microseconds, at least 1.
fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros().max(1)).unwrap_or(u64::MAX)
}

/// The counters, histogram and CPU sample of one phase while it runs.
struct Recording {
    pid: u32,
    counts: Arc<Counts>,
    hist: Arc<Mutex<Histogram<u64>>>,
    before: Sample,
    /// This process (the generator) at the start.
    own_before: Sample,
    start: Instant,
}

impl Recording {
    fn start(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            pid,
            counts: Arc::new(Counts::default()),
            hist: Arc::new(Mutex::new(histogram()?)),
            before: Sample::take(pid),
            own_before: Sample::take(std::process::id()),
            start: Instant::now(),
        })
    }

    fn finish(self, name: &str) -> anyhow::Result<Phase> {
        let elapsed = self.start.elapsed();
        let after = Sample::take(self.pid);
        let own_after = Sample::take(std::process::id());
        let hist = self
            .hist
            .lock()
            .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?
            .clone();
        Ok(Phase {
            name: name.to_owned(),
            hist,
            ok: self.counts.ok.load(Ordering::Relaxed),
            c4xx: self.counts.c4xx.load(Ordering::Relaxed),
            c5xx: self.counts.c5xx.load(Ordering::Relaxed),
            errors: self.counts.errors.load(Ordering::Relaxed),
            elapsed,
            cpu: cpu_percent(self.before, after),
            rss_mib: after.rss_mib(),
            generator_cpu: cpu_percent(self.own_before, own_after),
            generator_rss_mib: own_after.rss_mib(),
        })
    }
}

/// When request `n` of task `task` (of `tasks`) is due, from the start of
/// an open-loop phase at `rate` requests/s over all tasks: each task sends
/// every `tasks / rate` seconds and the tasks' schedules are spread evenly
/// over one period, so that request `n · tasks + task` of the phase is due
/// at `(n · tasks + task) / rate`.
pub fn scheduled_offset(rate: f64, tasks: usize, task: usize, n: u64) -> Duration {
    let index = n as f64 * tasks as f64 + task as f64;
    Duration::try_from_secs_f64(index / rate).unwrap_or(Duration::MAX)
}

/// Runs `connections` tasks against `addr` (served by process `pid`) for
/// `seconds`. With `rate`, each task sends on a fixed schedule (open loop)
/// and latency counts from the scheduled time; without, each sends its
/// next request as soon as the last one is answered.
pub async fn http_phase(
    name: &str,
    addr: SocketAddr,
    pid: u32,
    connections: usize,
    seconds: f64,
    rate: Option<f64>,
    paths: Paths,
) -> anyhow::Result<Phase> {
    let recording = Recording::start(pid)?;
    let start = recording.start;
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for task in 0..connections {
        let counts = recording.counts.clone();
        let hist = recording.hist.clone();
        let paths = paths.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = histogram()?;
            let mut sender = connection(addr).await?;
            let mut n: u64 = 0;
            loop {
                let scheduled = match rate {
                    Some(r) => start + scheduled_offset(r, connections, task, n),
                    None => Instant::now(),
                };
                if scheduled >= deadline {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let path = paths(task, n);
                if !request(&mut sender, addr, &path, &counts).await {
                    sender = connection(addr).await?;
                }
                local.saturating_record(micros(scheduled.elapsed()));
                n += 1;
            }
            if let Ok(mut h) = hist.lock() {
                h.add(&local)?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    recording.finish(name)
}

/// Requests `0..n` (path `paths(task, i)` for request `i`), taken in order
/// by `workers` tasks, each on its own connection; latency from each
/// request's send.
pub async fn queue_phase(
    name: &str,
    addr: SocketAddr,
    pid: u32,
    workers: usize,
    n: usize,
    paths: Paths,
) -> anyhow::Result<Phase> {
    let recording = Recording::start(pid)?;
    let work = Arc::new(Mutex::new((0..n).collect::<VecDeque<_>>()));
    let mut tasks = Vec::new();
    for t in 0..workers {
        let (counts, hist, work, paths) = (
            recording.counts.clone(),
            recording.hist.clone(),
            work.clone(),
            paths.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sender = connection(addr).await?;
            loop {
                let next = work.lock().ok().and_then(|mut w| w.pop_front());
                let Some(i) = next else { break };
                let path = paths(t, i as u64);
                let at = Instant::now();
                if !request(&mut sender, addr, &path, &counts).await {
                    sender = connection(addr).await?;
                }
                if let Ok(mut h) = hist.lock() {
                    h.saturating_record(micros(at.elapsed()));
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    recording.finish(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_schedule_sends_evenly_at_the_offered_rate() {
        let (rate, tasks, seconds) = (1_000.0, 8, 2.0);
        let horizon = Duration::from_secs_f64(seconds);
        let mut due: Vec<Duration> = Vec::new();
        for task in 0..tasks {
            let mut n = 0;
            loop {
                let at = scheduled_offset(rate, tasks, task, n);
                if at >= horizon {
                    break;
                }
                due.push(at);
                n += 1;
            }
        }
        // rate × seconds requests, one every 1/rate, none twice.
        assert_eq!(due.len(), 2_000);
        due.sort();
        for (i, at) in due.iter().enumerate() {
            let want = i as f64 / rate;
            assert!(
                (at.as_secs_f64() - want).abs() < 1e-6,
                "request {i} due at {at:?}"
            );
        }
    }

    #[test]
    fn open_loop_schedule_does_not_depend_on_answers() {
        // A task's n-th send time is fixed in advance: one period apart.
        let ms = |task, n| scheduled_offset(100.0, 4, task, n).as_secs_f64() * 1_000.0;
        for n in 0..10 {
            assert!((ms(1, n + 1) - ms(1, n) - 40.0).abs() < 1e-6);
        }
        assert!((ms(3, 0) - 30.0).abs() < 1e-6);
    }
}
