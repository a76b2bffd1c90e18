//! `insite-bench stages`: staged load, one stage per offered rate, rising
//! until the service or the pipeline saturates.
//!
//! - `stages query` ([`query`]): the query service at rising request
//!   rates (open loop), a mix of hot reads, history and vendor aggregates;
//! - `stages pipeline` ([`pipeline`]): the pipeline at rising event rates.
//!
//! Each prints one table row per stage (offered and achieved rate,
//! latency quantiles, error shares, each process's CPU and RSS), names the
//! knee ([`knee`]) and draws p50/p99 latency against offered load as an SVG
//! file under `--svg-dir` ([`crate::plot::latency_curve`]).

pub mod pipeline;
pub mod query;

use clap::{Args, Subcommand};
use insite_config::InsiteConfig;

/// Arguments of `insite-bench stages`.
#[derive(Debug, Args)]
pub struct BenchStagesArgs {
    #[command(subcommand)]
    what: Staged,
}

/// What is staged.
#[derive(Debug, Subcommand)]
enum Staged {
    /// The query service at rising request rates (open loop).
    Query(query::StagesQueryArgs),
    /// The pipeline at rising event rates until it saturates.
    Pipeline(pipeline::StagesPipelineArgs),
}

/// Runs `insite-bench stages`.
pub fn run(config: &InsiteConfig, args: BenchStagesArgs) -> anyhow::Result<()> {
    match args.what {
        Staged::Query(args) => query::run(config, args),
        Staged::Pipeline(args) => pipeline::run(config, args),
    }
}

/// A stage's throughput is short of what was offered below this share of
/// it.
pub const KEEP_UP_SHARE: f64 = 0.95;

/// A stage's p99 has jumped when it is more than this many times the
/// previous stage's.
pub const P99_JUMP: f64 = 5.0;

/// What a stage did, for [`knee`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StagePoint {
    /// Offered rate, per second.
    pub offered: f64,
    /// Achieved rate, per second.
    pub achieved: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// Why a stage is the knee.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KneeReason {
    /// Achieved was below [`KEEP_UP_SHARE`] of offered: this share.
    FellBehind(f64),
    /// p99 was more than [`P99_JUMP`] times the previous stage's: this
    /// factor.
    P99Jump(f64),
}

/// The knee of a staged run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knee {
    /// Index of the stage.
    pub stage: usize,
    /// Why.
    pub reason: KneeReason,
}

impl std::fmt::Display for Knee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            KneeReason::FellBehind(share) => write!(
                f,
                "stage {} (achieved {:.1} % of offered, under {:.0} %)",
                self.stage + 1,
                share * 100.0,
                KEEP_UP_SHARE * 100.0
            ),
            KneeReason::P99Jump(factor) => write!(
                f,
                "stage {} (p99 {factor:.1}× the previous stage's, over {P99_JUMP:.0}×)",
                self.stage + 1
            ),
        }
    }
}

/// The first stage (in the order run, rising offered rates) that did not
/// keep up (achieved below [`KEEP_UP_SHARE`] of offered) or whose p99 was
/// more than [`P99_JUMP`] times the previous stage's; `None` if every
/// stage kept up.
pub fn knee(stages: &[StagePoint]) -> Option<Knee> {
    stages.iter().enumerate().find_map(|(i, s)| {
        let share = s.achieved / s.offered.max(f64::MIN_POSITIVE);
        if share < KEEP_UP_SHARE {
            return Some(Knee {
                stage: i,
                reason: KneeReason::FellBehind(share),
            });
        }
        let previous = i.checked_sub(1).and_then(|j| stages.get(j))?;
        let factor = s.p99_ms / previous.p99_ms.max(1e-6);
        (factor > P99_JUMP).then_some(Knee {
            stage: i,
            reason: KneeReason::P99Jump(factor),
        })
    })
}

/// Checks a list of offered rates: not empty, each positive and finite.
pub fn check_rates(rates: &[f64]) -> anyhow::Result<()> {
    anyhow::ensure!(!rates.is_empty(), "--rates is empty");
    for r in rates {
        anyhow::ensure!(
            r.is_finite() && *r > 0.0,
            "--rates: {r} is not a positive rate"
        );
    }
    Ok(())
}

/// `n` as text with thousands separators (`20,000`).
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(offered: f64, achieved: f64, p99_ms: f64) -> StagePoint {
        StagePoint {
            offered,
            achieved,
            p99_ms,
        }
    }

    #[test]
    fn no_knee_while_every_stage_keeps_up() {
        let stages = [
            point(100.0, 100.0, 1.0),
            point(1_000.0, 999.0, 1.2),
            point(5_000.0, 4_990.0, 4.9),
        ];
        assert_eq!(knee(&stages), None);
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn knee_where_throughput_falls_behind() {
        let stages = [
            point(100.0, 100.0, 1.0),
            point(1_000.0, 990.0, 1.5),
            point(5_000.0, 4_000.0, 2.0),
            point(10_000.0, 4_100.0, 900.0),
        ];
        let k = knee(&stages);
        assert_eq!(k.map(|k| k.stage), Some(2));
        assert!(
            matches!(k.map(|k| k.reason), Some(KneeReason::FellBehind(s)) if (s - 0.8).abs() < 1e-9)
        );
    }

    #[test]
    fn knee_where_p99_jumps() {
        let stages = [
            point(100.0, 100.0, 1.0),
            point(1_000.0, 1_000.0, 5.0),
            point(5_000.0, 5_000.0, 26.0),
        ];
        let k = knee(&stages);
        assert_eq!(k.map(|k| k.stage), Some(2));
        assert!(
            matches!(k.map(|k| k.reason), Some(KneeReason::P99Jump(f)) if (f - 5.2).abs() < 1e-9)
        );
        // Exactly 5× is not yet a jump; the first stage has no previous.
        let stages = [point(100.0, 100.0, 50.0), point(1_000.0, 1_000.0, 250.0)];
        assert_eq!(knee(&stages), None);
    }

    #[test]
    fn falling_behind_is_seen_at_the_first_stage_too() {
        let k = knee(&[point(100.0, 90.0, 1.0)]);
        assert_eq!(k.map(|k| k.stage), Some(0));
    }

    #[test]
    fn rates_are_checked() {
        assert!(check_rates(&[100.0, 1_000.0]).is_ok());
        assert!(check_rates(&[]).is_err());
        assert!(check_rates(&[100.0, 0.0]).is_err());
        assert!(check_rates(&[f64::NAN]).is_err());
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(20_000.0), "20,000");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
    }
}
