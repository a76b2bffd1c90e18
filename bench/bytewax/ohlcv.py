"""Event-time 1-minute OHLCV + VWAP bars over a trades CSV, in Bytewax 0.21.

The reference system of `insite-bench backfill`: the same computation as
insite's 1-minute bars, written the way a Bytewax user writes it, with
Bytewax's own connectors and windowing operators.

    python ohlcv.py TRADES_CSV BARS_CSV [LATE_CSV]

Input: a CSV with a header holding at least `symbol,ts,price,size` (`ts` in
integer epoch milliseconds), as `insite-bench backfill` generates it.

Output: one line per (symbol, window), no header, in the column order
`symbol,window_start_ms,open,high,low,close,volume,vwap,trades`. Floats are
written with `repr`, which round-trips exactly. Trades the event-time clock
found late (none on a time-sorted file) go to LATE_CSV, if given, as
`symbol,ts`.

The dataflow:
- `CSVSource` reads the rows; a map parses them;
- `key_on` keys them by symbol;
- `fold_window` with an `EventClock` on the trade's own timestamp and a
  `TumblingWindower` of one minute aligned to the UTC epoch folds each
  window into (open, high, low, close, volume, notional, trades). The fold
  picks open and close by timestamp, so it does not need Bytewax to sort
  the values (`ordered=False`, Bytewax's faster mode; the file is sorted);
- the closed windows are formatted and written with `FileSink`.

The clock is pure event time: the watermark is the largest timestamp seen
minus a lateness of 2 s (insite's default), and system time does not move
it (`now_getter` is a constant), so the result depends only on the file,
not on how fast this machine happens to read it. At the end of the input
every window closes.
"""

import sys
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
from bytewax.connectors.files import CSVSource, FileSink
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.run import cli_main

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=1)
WINDOW_MS = 60_000
LATENESS = timedelta(seconds=2)

# Accumulator slots: [open_ts, open, high, low, close_ts, close, volume,
# notional, trades].
OPEN_TS, OPEN, HIGH, LOW, CLOSE_TS, CLOSE, VOLUME, NOTIONAL, TRADES = range(9)


def parse(row):
    """A CSV row as (symbol, ts as an aware UTC datetime, ts_ms, price, size)."""
    ts_ms = int(row["ts"])
    return (
        row["symbol"],
        EPOCH + timedelta(milliseconds=ts_ms),
        ts_ms,
        float(row["price"]),
        int(row["size"]),
    )


def trade_ts(trade):
    return trade[1]


def empty():
    return None


def fold(acc, trade):
    _symbol, _ts, ts_ms, price, size = trade
    if acc is None:
        return [ts_ms, price, price, price, ts_ms, price, size, price * size, 1]
    if ts_ms < acc[OPEN_TS]:
        acc[OPEN_TS] = ts_ms
        acc[OPEN] = price
    if ts_ms >= acc[CLOSE_TS]:
        acc[CLOSE_TS] = ts_ms
        acc[CLOSE] = price
    if price > acc[HIGH]:
        acc[HIGH] = price
    if price < acc[LOW]:
        acc[LOW] = price
    acc[VOLUME] += size
    acc[NOTIONAL] += price * size
    acc[TRADES] += 1
    return acc


def merge(a, b):
    # Tumbling windows never merge; kept correct anyway.
    if a is None:
        return b
    if b is None:
        return a
    first, second = (a, b) if a[OPEN_TS] <= b[OPEN_TS] else (b, a)
    last = b if b[CLOSE_TS] >= a[CLOSE_TS] else a
    return [
        first[OPEN_TS],
        first[OPEN],
        max(a[HIGH], b[HIGH]),
        min(a[LOW], b[LOW]),
        last[CLOSE_TS],
        last[CLOSE],
        a[VOLUME] + b[VOLUME],
        a[NOTIONAL] + b[NOTIONAL],
        a[TRADES] + b[TRADES],
    ]


def bar_line(keyed):
    symbol, (window_id, acc) = keyed
    vwap = acc[NOTIONAL] / acc[VOLUME] if acc[VOLUME] else 0.0
    line = ",".join(
        (
            symbol,
            str(window_id * WINDOW_MS),
            repr(acc[OPEN]),
            repr(acc[HIGH]),
            repr(acc[LOW]),
            repr(acc[CLOSE]),
            str(acc[VOLUME]),
            repr(vwap),
            str(acc[TRADES]),
        )
    )
    return symbol, line


def late_line(keyed):
    symbol, (_window_id, trade) = keyed
    return symbol, f"{symbol},{trade[2]}"


def get_flow(trades_csv, bars_csv, late_csv=None):
    """The dataflow from `trades_csv` to `bars_csv` (and `late_csv`)."""
    flow = Dataflow("insite_bench_ohlcv")
    rows = op.input("trades", flow, CSVSource(trades_csv, batch_size=10_000))
    trades = op.map("parse", rows, parse)
    keyed = op.key_on("by_symbol", trades, lambda t: t[0])
    clock = EventClock(
        ts_getter=trade_ts,
        wait_for_system_duration=LATENESS,
        now_getter=lambda: EPOCH,
        to_system_utc=lambda _ts: None,
    )
    windower = TumblingWindower(length=WINDOW, align_to=EPOCH)
    bars = fold_window(
        "bars_1m", keyed, clock, windower, empty, fold, merge, ordered=False
    )
    op.output("bars_csv", op.map("bar_line", bars.down, bar_line), FileSink(bars_csv))
    if late_csv is not None:
        op.output(
            "late_csv", op.map("late_line", bars.late, late_line), FileSink(late_csv)
        )
    return flow


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    from pathlib import Path

    paths = [Path(p) for p in argv[1:]]
    # FileSink appends to a file that exists; start from empty ones.
    for path in paths[1:]:
        path.write_text("")
    cli_main(get_flow(*paths), workers_per_process=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
