//! `insite pipeline run` as real processes against the shared test servers:
//! killed with SIGKILL at several moments and restarted, it must end with
//! exactly the `bars` and `sentiment` tables of an uninterrupted run; run as
//! a cluster of two timely processes, it must give the tables of one; and
//! rescaled 2 → 3 → 1 processes mid-stream (with the frontier record of a
//! process of an earlier, larger topology left in ClickHouse), it must give
//! them too.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use insite_pipeline::{Connections, PipelineConfig};
use insite_testkit::child::terminate;
use insite_testkit::pipeline::{config, run_until_durable, Backlog};
use insite_testkit::results::{durable_frontier, record_frontier, wait_durable, RunTables};
use insite_testkit::wait::eventually;
use insite_testkit::TestEnv;

/// Event time of the first synthetic event: 2026-01-06T15:00:00Z.
const START_MS: i64 = 1_767_711_600_000;

/// `insite pipeline run` (this crate's binary) on `connections`.
fn spawn_pipeline(connections: &Connections, config: &PipelineConfig, extra: &[String]) -> Child {
    let insite = Path::new(env!("CARGO_BIN_EXE_insite"));
    insite_testkit::child::spawn_pipeline(insite, connections, config, extra)
}

/// Publishes a backlog of `events` synthetic events from `seed`, out of
/// order by up to 3 s (some arrive beyond the 2 s lateness, so late events
/// are compared too), and runs one uninterrupted process over it into a
/// database of its own, `name`: the input's last event time and the tables
/// every other run over it must give.
async fn reference_run(env: &TestEnv, seed: u64, events: u64, name: &str) -> (i64, RunTables) {
    let done = Backlog {
        seed,
        events,
        start_ms: START_MS,
        jitter_ms: 3_000,
    }
    .publish(env)
    .await;
    let reference = env.with_database(name);
    run_until_durable(&reference, &config(name), done).await;
    let want = RunTables::read(&reference.clickhouse).await;
    assert!(!want.late.is_empty(), "the input has late events");
    assert!(!want.bars.is_empty(), "the input has bars");
    (done, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_any_moment_and_restarted_it_ends_with_the_uninterrupted_tables() {
    let env = TestEnv::new("pipeline_crash");
    let (done, want) = reference_run(&env, 7, 150_000, "straight").await;
    assert!(want.bars.len() > 500, "{} bars", want.bars.len());

    // The same input through a process killed with SIGKILL at several
    // moments, restarted each time.
    let crashy = env.connections.clone();
    let crashy_config = config("crashy");
    let mut progress_seen = Vec::new();
    // (ms after start, or after the run's first durable record if `true`).
    let kills = [
        (700u64, false),
        (300, true),
        (1_300, false),
        (900, true),
        (400, false),
    ];
    for (round, (after_ms, after_progress)) in kills.into_iter().enumerate() {
        let before = durable_frontier(&crashy.clickhouse, "crashy").await;
        let mut child = spawn_pipeline(&crashy, &crashy_config, &[]);
        if after_progress {
            // Wait for this run's own first record (the frontier moves on).
            eventually(Duration::from_secs(60), async || {
                durable_frontier(&crashy.clickhouse, "crashy").await != before
            })
            .await
            .unwrap_or_else(|e| panic!("round {round}: no progress: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: killed, not exited");
        progress_seen.push(durable_frontier(&crashy.clickhouse, "crashy").await);
    }
    let last = spawn_pipeline(&crashy, &crashy_config, &[]);
    wait_durable(&crashy.clickhouse, "crashy", done).await;
    terminate(vec![last]);

    // The kills fell at different points of the run: before anything was
    // durable, and after some windows were.
    assert!(
        progress_seen.iter().any(Option::is_some),
        "no kill after the first durable flush: {progress_seen:?}"
    );
    RunTables::read(&crashy.clickhouse)
        .await
        .assert_equal(&want, "killed and restarted vs uninterrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_timely_processes_give_the_tables_of_one() {
    let env = TestEnv::new("pipeline_cluster");
    let (done, want) = reference_run(&env, 7, 60_000, "one").await;

    let two = env.connections.clone();
    let two_config = config("two");
    let ports = insite_local::free_ports(2).unwrap();
    let hosts = format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]);
    let children: Vec<Child> = (0..2)
        .map(|process| {
            spawn_pipeline(
                &two,
                &two_config,
                &[
                    "--workers".into(),
                    "2".into(),
                    "--process".into(),
                    process.to_string(),
                    "--hosts".into(),
                    hosts.clone(),
                ],
            )
        })
        .collect();
    wait_durable(&two.clickhouse, "two", done).await;
    terminate(children);
    RunTables::read(&two.clickhouse)
        .await
        .assert_equal(&want, "two processes vs one");
}

/// The processes of one pipeline, killed when dropped (so that a failing
/// test leaves none running).
struct Processes(Vec<Child>);

impl Processes {
    /// Stops them as an operator does ([`terminate`]).
    fn terminate(mut self) {
        terminate(std::mem::take(&mut self.0));
    }

    /// Kills them with SIGKILL, as a crash would.
    fn kill(mut self) {
        for child in &mut self.0 {
            child.kill().unwrap();
        }
        for mut child in std::mem::take(&mut self.0) {
            let _ = child.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `processes` processes of one timely cluster (one worker each) on
/// `connections`; one process runs on its own.
fn spawn_cluster(
    connections: &Connections,
    config: &PipelineConfig,
    processes: usize,
) -> Processes {
    if processes == 1 {
        return Processes(vec![spawn_pipeline(connections, config, &[])]);
    }
    let ports = insite_local::free_ports(processes).unwrap();
    let hosts = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    Processes(
        (0..processes)
            .map(|process| {
                spawn_pipeline(
                    connections,
                    config,
                    &[
                        "--workers".into(),
                        "1".into(),
                        "--process".into(),
                        process.to_string(),
                        "--hosts".into(),
                        hosts.clone(),
                    ],
                )
            })
            .collect(),
    )
}

/// Waits until `pipeline`'s recorded durable frontier moves past `before`.
async fn wait_progress(connections: &Connections, pipeline: &str, before: Option<i64>) {
    eventually(Duration::from_secs(120), async || {
        durable_frontier(&connections.clickhouse, pipeline).await > before
    })
    .await
    .unwrap_or_else(|e| panic!("{pipeline}: no progress past {before:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaled_2_3_1_processes_mid_stream_it_gives_the_tables_of_one() {
    let env = TestEnv::new("pipeline_rescale");
    let (done, want) = reference_run(&env, 11, 150_000, "one").await;
    assert!(want.bars.len() > 500, "{} bars", want.bars.len());

    let scaled = env.connections.clone();
    let scaled_config = config("rescale");
    // Two processes, stopped cleanly (as `cluster up` rescales a healthy
    // pipeline) once some windows are durable.
    let two = spawn_cluster(&scaled, &scaled_config, 2);
    wait_progress(&scaled, "rescale", None).await;
    two.terminate();
    let after_two = durable_frontier(&scaled.clickhouse, "rescale").await;
    assert!(
        after_two.is_some_and(|f| f < done),
        "two processes finished the input before the rescale: {after_two:?} (input through {done})"
    );

    // A record left by process 2 of an earlier three-process topology,
    // far ahead of the input: were it taken for the new process 2's
    // frontier, the pipeline's frontier would pass windows that process
    // had not written, and a crash would lose them.
    for source in ["market", "social"] {
        record_frontier(&env, "rescale/2", source, done + 3_600_000, 1).await;
    }

    // Three processes (one of them new), killed with SIGKILL once they
    // moved the frontier on: a crash of the new topology.
    let three = spawn_cluster(&scaled, &scaled_config, 3);
    wait_progress(&scaled, "rescale", after_two).await;
    three.kill();
    let after_three = durable_frontier(&scaled.clickhouse, "rescale").await;

    // One process to the end.
    let last = spawn_cluster(&scaled, &scaled_config, 1);
    wait_durable(&scaled.clickhouse, "rescale", done).await;
    last.terminate();
    println!(
        "frontiers: after 2 processes {after_two:?}, after 3 {after_three:?}, input through {done}"
    );

    RunTables::read(&scaled.clickhouse)
        .await
        .assert_equal(&want, "rescaled 2 -> 3 -> 1 vs one process");
}
