"""The vendor's official Python WebSocketClient (polygon-api-client),
unchanged, against insite's vendor-compatible WebSocket: only its feed host
points at the service (`feed="127.0.0.1:PORT"`, `secure=False`, so it
connects to ws://127.0.0.1:PORT/stocks).

Usage: polygon_ws.py HOST:PORT API_KEY SECONDS WANT_T WANT_AM
Subscribes to T.AAPL and AM.AAPL and collects events until it has at least
WANT_T trades and WANT_AM minute aggregates (or SECONDS pass); prints them
as JSON: {"T": [...], "AM": [...]}.
"""

import asyncio
import json
import sys

from polygon import WebSocketClient
from polygon.websocket.models import EquityAgg, EquityTrade


class Enough(Exception):
    pass


async def main():
    feed, key, seconds, want_t, want_am = sys.argv[1:6]
    seconds, want_t, want_am = float(seconds), int(want_t), int(want_am)
    client = WebSocketClient(api_key=key, feed=feed, market="stocks", secure=False,
                             subscriptions=["T.AAPL", "AM.AAPL"], max_reconnects=0)
    trades, minutes = [], []

    async def handle(msgs):
        for m in msgs:
            if isinstance(m, EquityTrade):
                trades.append({"ev": m.event_type, "sym": m.symbol, "i": m.id, "p": m.price,
                               "s": m.size, "t": m.timestamp})
            elif isinstance(m, EquityAgg):
                minutes.append({"ev": m.event_type, "sym": m.symbol, "o": m.open, "h": m.high,
                                "l": m.low, "c": m.close, "v": m.volume, "vw": m.vwap,
                                "z": m.average_size, "s": m.start_timestamp,
                                "e": m.end_timestamp})
        if len(trades) >= want_t and len(minutes) >= want_am:
            raise Enough()

    try:
        await asyncio.wait_for(client.connect(handle), timeout=seconds)
    except (Enough, asyncio.TimeoutError):
        pass
    print(json.dumps({"T": trades, "AM": minutes}))


if __name__ == "__main__":
    asyncio.run(main())
