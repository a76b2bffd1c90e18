//! One-minute bars from a CSV of trades, on one timely worker, with no
//! servers: the operators exactly as the pipeline runs them, fed from a
//! file instead of JetStream.
//!
//! ```sh
//! cargo run -p insite-operators --example bars_from_csv -- operators/examples/trades.csv
//! ```
//!
//! The file has a header and the columns `symbol,ts,price,size` (then,
//! optionally, `trade_id,exchange`), `ts` in milliseconds since the epoch.
//! File order plays the part of stream order: each trade is stamped with
//! the file's watermark before it ([`StreamClock`]), so a trade more than the
//! allowed lateness (2 s) behind an earlier one is reported late.

use std::error::Error;

use insite_operators::{build_market, captured, OperatorsConfig, StreamClock};
use insite_schemas::{Finality, Interval, Symbol, Trade};
use timely::dataflow::operators::{Capture, Input};

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/trades.csv").into());
    let text = std::fs::read_to_string(&path)?;
    let trades = parse(&text)?;
    let config = OperatorsConfig::default();
    config.validate()?;

    let (bars, late) = timely::execute_directly(move |worker| {
        let (mut input, bars, late) = worker.dataflow::<i64, _, _>(|scope| {
            let (input, trades) = scope.new_input::<Vec<Trade>>();
            let out = build_market(trades, &config);
            (input, out.bars.capture(), out.late.capture())
        });
        let mut clock = StreamClock::new(config.allowed_lateness_ms);
        for trade in trades {
            let stamp = clock.watermark().max(*input.time());
            input.advance_to(stamp);
            clock.advance(trade.ts);
            input.send(trade);
            worker.step();
        }
        drop(input); // the file is complete: every window closes
        while worker.step() {}
        (bars, late)
    });

    let mut finals: Vec<_> = captured(bars)
        .into_iter()
        .map(|(_, bar)| bar)
        .filter(|bar| bar.finality == Finality::Final && bar.interval == Interval::MINUTE)
        .collect();
    finals.sort_by(|a, b| (&a.symbol, a.window_start).cmp(&(&b.symbol, b.window_start)));
    println!("symbol  window_start   open      high      low       close     volume  trades  vwap");
    for bar in &finals {
        println!(
            "{:<6}  {}  {:<8}  {:<8}  {:<8}  {:<8}  {:<6}  {:<6}  {:.4}",
            bar.symbol,
            bar.window_start,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.trades,
            bar.vwap
        );
    }
    println!(
        "{} one-minute bars, {} late trades",
        finals.len(),
        captured(late).len()
    );
    Ok(())
}

/// Parses the CSV (header first).
fn parse(text: &str) -> Result<Vec<Trade>, Box<dyn Error>> {
    let mut trades = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        let [symbol, ts, price, size, rest @ ..] = fields.as_slice() else {
            return Err(bad("expected symbol,ts,price,size").into());
        };
        let trade = Trade {
            symbol: Symbol::new(symbol).map_err(|e| bad(&e.to_string()))?,
            ts: ts.parse().map_err(|_| bad("ts is not an integer"))?,
            price: price.parse().map_err(|_| bad("price is not a number"))?,
            size: size.parse().map_err(|_| bad("size is not an integer"))?,
            trade_id: rest.first().copied().unwrap_or_default().into(),
            exchange: rest.get(1).copied().unwrap_or_default().into(),
            conditions: Vec::new(),
        };
        trade.validate().map_err(|e| bad(&e.to_string()))?;
        trades.push(trade);
    }
    Ok(trades)
}
