"""The vendor's official Python client (polygon-api-client), unchanged,
against insite's vendor-compatible REST routes: only its base URL points
at the service. Every value it returns is compared with an independent
computation over the same raw trades (New York days from Python's own
zoneinfo, not insite's calendar code).

Usage: polygon_rest.py BASE_URL API_KEY TRADES_JSON
TRADES_JSON: [{"sym", "ts" (ms), "p", "s", "i"}...], the trades the
pipeline was fed. Prints a JSON summary of what was compared; exits 1 on
the first mismatch, saying what differs.
"""

import datetime as dt
import json
import math
import sys
from zoneinfo import ZoneInfo

from polygon import RESTClient

NY = ZoneInfo("America/New_York")
FIXED_MS = {"second": 1_000, "minute": 60_000, "hour": 3_600_000}
CHECKS = {}


def fail(what):
    print(f"MISMATCH: {what}", file=sys.stderr)
    sys.exit(1)


def count(kind, n=1):
    CHECKS[kind] = CHECKS.get(kind, 0) + n


def ny_midnight(day):
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=NY).timestamp() * 1000)


def ny_date(ts_ms):
    return dt.datetime.fromtimestamp(ts_ms / 1000, NY).date()


def bucket(ts_ms, mult, span):
    if span in FIXED_MS:
        size = FIXED_MS[span] * mult
        return ts_ms - ts_ms % size
    assert mult == 1, "calendar buckets are checked with a multiplier of 1"
    d = ny_date(ts_ms)
    if span == "week":
        d = d - dt.timedelta(days=(d.weekday() + 1) % 7)  # back to Sunday
    elif span == "month":
        d = d.replace(day=1)
    elif span == "quarter":
        d = d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)
    elif span == "year":
        d = d.replace(month=1, day=1)
    return ny_midnight(d)


def expected_aggs(trades, mult, span, lo, hi):
    """The buckets from the one holding lo (the vendor snaps `from` to the
    start of its bucket) to the last one starting at or before hi, each
    over all of its trades."""
    out = {}
    first = bucket(lo, mult, span)
    for t in trades:
        b = bucket(t["ts"], mult, span)
        if not first <= b <= hi:
            continue
        a = out.get(b)
        if a is None:
            out[b] = {"t": b, "o": t["p"], "h": t["p"], "l": t["p"], "c": t["p"],
                      "v": 0, "pv": 0.0, "n": 0}
            a = out[b]
        a["h"] = max(a["h"], t["p"])
        a["l"] = min(a["l"], t["p"])
        a["c"] = t["p"]
        a["v"] += t["s"]
        a["pv"] += t["p"] * t["s"]
        a["n"] += 1
    result = [out[k] for k in sorted(out)]
    for a in result:
        a["vw"] = a["pv"] / a["v"]
    return result


def same_agg(what, got, want, with_t=True):
    if with_t and got.timestamp != want["t"]:
        fail(f"{what}: t {got.timestamp} != {want['t']}")
    for field, value in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c")):
        if getattr(got, field) != want[value]:
            fail(f"{what} at {want['t']}: {field} {getattr(got, field)} != {want[value]}")
    if got.volume != want["v"]:
        fail(f"{what} at {want['t']}: volume {got.volume} != {want['v']}")
    if hasattr(got, "transactions") and got.transactions is not None and got.transactions != want["n"]:
        fail(f"{what} at {want['t']}: transactions {got.transactions} != {want['n']}")
    if not math.isclose(got.vwap, want["vw"], rel_tol=1e-9):
        fail(f"{what} at {want['t']}: vwap {got.vwap} != {want['vw']}")


def same_list(what, got, want):
    if len(got) != len(want):
        fail(f"{what}: {len(got)} results, expected {len(want)}")
    for g, w in zip(got, want):
        same_agg(what, g, w)
    count(what, len(want))


def main():
    base, key, trades_path = sys.argv[1:4]
    with open(trades_path) as f:
        trades = json.load(f)
    trades.sort(key=lambda t: (t["ts"], t["i"]))
    by_sym = {}
    for t in trades:
        by_sym.setdefault(t["sym"], []).append(t)
    first = ny_date(trades[0]["ts"])
    last = ny_date(trades[-1]["ts"])
    lo = ny_midnight(first)
    hi = ny_midnight(last + dt.timedelta(days=1)) - 1
    client = RESTClient(api_key=key, base=base)
    sym = "AAPL"
    mine = by_sym[sym]

    # get_aggs in every kind of timespan, the whole range in one page.
    for mult, span in [(30, "second"), (1, "minute"), (5, "minute"), (1, "hour"),
                       (2, "hour"), (1, "day"), (1, "week"), (1, "month"),
                       (1, "quarter"), (1, "year")]:
        got = client.get_aggs(sym, mult, span, first.isoformat(), last.isoformat(), limit=50000)
        same_list(f"get_aggs {mult} {span}", got, expected_aggs(mine, mult, span, lo, hi))

    # Millisecond bounds: buckets whose start lies in [from, to].
    frm, to = mine[100]["ts"], mine[900]["ts"]
    got = client.get_aggs(sym, 15, "minute", frm, to, limit=50000)
    same_list("get_aggs 15 minute, ms bounds", got, expected_aggs(mine, 15, "minute", frm, to))

    # list_aggs follows next_url, oldest first and newest first.
    want = expected_aggs(mine, 1, "minute", lo, hi)
    got = list(client.list_aggs(sym, 1, "minute", first.isoformat(), last.isoformat(), limit=700))
    same_list("list_aggs 1 minute, pages of 700", got, want)
    got = list(client.list_aggs(sym, 1, "hour", first.isoformat(), last.isoformat(),
                                sort="desc", limit=7))
    same_list("list_aggs 1 hour desc, pages of 7", got,
              list(reversed(expected_aggs(mine, 1, "hour", lo, hi))))

    # The previous close: the newest day with trades.
    days = expected_aggs(mine, 1, "day", lo, hi)
    prev = client.get_previous_close_agg(sym)
    if len(prev) != 1 or prev[0].ticker != sym:
        fail(f"previous close: {prev}")
    same_agg("previous close", prev[0], days[-1])
    count("previous close")

    # The last trade.
    lt = client.get_last_trade(sym)
    newest = mine[-1]
    if (lt.ticker, lt.price, lt.size, lt.sip_timestamp, lt.id) != (
            sym, newest["p"], newest["s"], newest["ts"] * 1_000_000, newest["i"]):
        fail(f"last trade {lt} != {newest}")
    count("last trade")

    # The snapshot: the newest day, the day before, the last trade.
    snap = client.get_snapshot_ticker("stocks", sym)
    if snap.ticker != sym:
        fail(f"snapshot ticker {snap.ticker}")
    same_agg("snapshot day", snap.day, days[-1], with_t=False)
    same_agg("snapshot prevDay", snap.prev_day, days[-2], with_t=False)
    if snap.last_trade.price != newest["p"]:
        fail(f"snapshot last trade {snap.last_trade.price} != {newest['p']}")
    change = newest["p"] - days[-2]["c"]
    if not math.isclose(snap.todays_change, change, rel_tol=1e-9, abs_tol=1e-9):
        fail(f"snapshot todaysChange {snap.todays_change} != {change}")
    count("snapshot")

    # All tickers, and the gainers among them.
    all_snaps = {s.ticker: s for s in client.get_snapshot_all("stocks")}
    if set(all_snaps) != set(by_sym):
        fail(f"all snapshots: {sorted(all_snaps)} != {sorted(by_sym)}")
    for s, ts in by_sym.items():
        d = expected_aggs(ts, 1, "day", lo, hi)
        same_agg(f"all snapshots {s} day", all_snaps[s].day, d[-1], with_t=False)
    count("all snapshots", len(all_snaps))
    for direction, sign in (("gainers", 1), ("losers", -1)):
        got = client.get_snapshot_direction("stocks", direction)
        want = sorted((s for s in all_snaps.values() if sign * s.todays_change_percent > 0),
                      key=lambda s: -sign * s.todays_change_percent)[:20]
        if [g.ticker for g in got] != [g.ticker for g in want]:
            fail(f"{direction} {[g.ticker for g in got]} != {[g.ticker for g in want]}")
        count(direction, len(got))

    # Daily open/close, and grouped daily of every ticker, on the day before.
    day = last - dt.timedelta(days=1)
    want_day = expected_aggs(mine, 1, "day", lo, hi)[-2]
    oc = client.get_daily_open_close_agg(sym, day.isoformat())
    if (oc.symbol, oc.from_, oc.open, oc.high, oc.low, oc.close, oc.volume) != (
            sym, day.isoformat(), want_day["o"], want_day["h"], want_day["l"], want_day["c"],
            want_day["v"]):
        fail(f"open/close {oc} != {want_day}")
    session_open = int(dt.datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY).timestamp() * 1000)
    session_close = session_open + 390 * 60_000
    of_day = [t for t in mine if ny_date(t["ts"]) == day]
    # Pre-market: the first half hour with trades, when it starts before 09:30.
    first_half_hour = of_day[0]["ts"] - of_day[0]["ts"] % 1_800_000
    pre = of_day[0]["p"] if first_half_hour < session_open else None
    after = [t for t in of_day if t["ts"] >= session_close]
    if oc.pre_market != pre or oc.after_hours != (after[-1]["p"] if after else None):
        fail(f"open/close pre-market {oc.pre_market} / after-hours {oc.after_hours}")
    count("daily open/close")
    # Twice: the second answer of a durable day comes from the cache.
    for attempt in ("computed", "cached"):
        grouped = {g.ticker: g for g in client.get_grouped_daily_aggs(day.isoformat())}
        if set(grouped) != set(by_sym):
            fail(f"grouped daily ({attempt}) tickers {sorted(grouped)}")
        for s, ts in by_sym.items():
            want = [a for a in expected_aggs(ts, 1, "day", lo, hi) if a["t"] == ny_midnight(day)][0]
            same_agg(f"grouped daily ({attempt}) {s}", grouped[s], want)
    count("grouped daily", len(grouped))

    print(json.dumps(CHECKS, sort_keys=True))


if __name__ == "__main__":
    main()
