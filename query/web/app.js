// The live chart page: candles with volume, a sentiment line, trending
// symbols and alerts for one symbol, loaded over the HTTP API and kept
// current over the WebSocket (/v1/stream).
(function () {
  'use strict';
  const LC = window.LightweightCharts;
  const params = new URLSearchParams(location.search);
  const apiKey = params.get('api_key') || '';
  const $ = (id) => document.getElementById(id);
  const state = {
    symbol: (params.get('symbol') || 'AAPL').toUpperCase(),
    interval: params.get('interval') || '1m',
    lastBarTime: 0,
    lastSentTime: 0,
    ws: null,
    retry: 500,
  };
  $('symbol').value = state.symbol;
  $('interval').value = state.interval;

  const theme = {
    layout: { background: { color: '#0f1419' }, textColor: '#b8c4d6' },
    grid: { vertLines: { color: '#1c2533' }, horzLines: { color: '#1c2533' } },
    timeScale: { timeVisible: true, secondsVisible: true },
    autoSize: true,
  };
  const priceChart = LC.createChart($('price'), theme);
  const candles = priceChart.addSeries(LC.CandlestickSeries, {
    upColor: '#26a69a', downColor: '#ef5350', borderVisible: false,
    wickUpColor: '#26a69a', wickDownColor: '#ef5350',
  });
  const volume = priceChart.addSeries(LC.HistogramSeries, {
    priceScaleId: '', priceFormat: { type: 'volume' }, color: '#3b4d6b',
  });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  const sentChart = LC.createChart($('sentiment'), theme);
  const sentiment = sentChart.addSeries(LC.LineSeries, { color: '#e0b341', lineWidth: 2 });
  // For tests and the browser console.
  window.insiteChart = { priceChart, sentChart, candles, volume, sentiment };

  function status(text) { $('status').textContent = text; }
  function headers() { return apiKey ? { 'X-API-Key': apiKey } : {}; }
  async function getJson(path) {
    const r = await fetch(path, { headers: headers() });
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(path + ': ' + r.status + ' ' + (await r.text()));
    return r.json();
  }
  function seconds(ms) { return Math.floor(ms / 1000); }

  function showCandle(bar) {
    const el = $('last-candle');
    el.dataset.state = 'candle';
    el.dataset.time = String(bar.t);
    el.dataset.close = String(bar.c);
    el.dataset.final = String(bar.final);
    el.textContent = `${state.symbol} ${state.interval} ${new Date(bar.t).toISOString()}  ` +
      `O ${bar.o}  H ${bar.h}  L ${bar.l}  C ${bar.c}  V ${bar.v}  n ${bar.n}` +
      (bar.final ? '' : '  (live)');
  }

  function putBar(bar) {
    const time = seconds(bar.t);
    if (time < state.lastBarTime) return;
    state.lastBarTime = time;
    candles.update({ time, open: bar.o, high: bar.h, low: bar.l, close: bar.c });
    volume.update({ time, value: bar.v, color: bar.c >= bar.o ? '#1f5f58' : '#7a2e2d' });
    showCandle(bar);
  }

  function putSentiment(w) {
    const time = seconds(w.window_start);
    if (time < state.lastSentTime) return;
    state.lastSentTime = time;
    sentiment.update({ time, value: w.score });
  }

  function showTrending(t) {
    const list = $('trending');
    list.replaceChildren(...(t.entries.length ? t.entries.slice(0, 10).map((e) => {
      const li = document.createElement('li');
      li.textContent = `${e.symbol} — ${e.mentions} mentions, z ${e.zscore.toFixed(2)}`;
      return li;
    }) : [Object.assign(document.createElement('li'), { className: 'muted', textContent: 'nothing trending' })]));
  }

  function addAlert(a, prepend) {
    const list = $('alerts');
    if (list.firstElementChild && list.firstElementChild.classList.contains('muted')) list.replaceChildren();
    const li = document.createElement('li');
    li.textContent = `${new Date(a.window_start).toISOString().slice(11, 19)} ${a.symbol}: ${a.message}`;
    if (prepend) list.prepend(li); else list.append(li);
    while (list.children.length > 30) list.lastElementChild.remove();
  }

  async function load() {
    state.lastBarTime = 0;
    state.lastSentTime = 0;
    candles.setData([]);
    volume.setData([]);
    sentiment.setData([]);
    const el = $('last-candle');
    el.dataset.state = 'empty';
    el.textContent = 'no candle yet';
    const now = Date.now();
    const from = now - 6 * 3600 * 1000;
    const to = now + 3600 * 1000;
    const sym = encodeURIComponent(state.symbol);
    const iv = encodeURIComponent(state.interval);
    try {
      const aggs = await getJson(`/v1/aggs/${sym}/range/${iv}/${from}/${to}?limit=5000`);
      if (aggs) {
        candles.setData(aggs.results.map((b) => ({ time: seconds(b.t), open: b.o, high: b.h, low: b.l, close: b.c })));
        volume.setData(aggs.results.map((b) => ({ time: seconds(b.t), value: b.v, color: b.c >= b.o ? '#1f5f58' : '#7a2e2d' })));
        if (aggs.results.length) {
          const last = aggs.results[aggs.results.length - 1];
          state.lastBarTime = seconds(last.t);
          showCandle(last);
        }
      }
      const sent = await getJson(`/v1/sentiment/${sym}/range/${iv}/${from}/${to}?limit=5000`);
      if (sent) {
        sentiment.setData(sent.results.map((w) => ({ time: seconds(w.window_start), value: w.score })));
        if (sent.results.length) state.lastSentTime = seconds(sent.results[sent.results.length - 1].window_start);
      }
      const trending = await getJson(`/v1/trending?interval=${iv}&limit=10`);
      if (trending) showTrending(trending);
      const alerts = await getJson(`/v1/alerts?limit=30`);
      if (alerts && alerts.results.length) { $('alerts').replaceChildren(); alerts.results.forEach((a) => addAlert(a, false)); }
    } catch (e) {
      status('load failed: ' + e.message);
    }
  }

  function subscribe(ws) {
    ws.send(JSON.stringify({ op: 'subscribe', symbols: [state.symbol], kinds: [`bars.${state.interval}`, `sentiment.${state.interval}`] }));
    ws.send(JSON.stringify({ op: 'subscribe', kinds: [`trending.${state.interval}`, 'alerts'] }));
  }

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/v1/stream${apiKey ? '?api_key=' + encodeURIComponent(apiKey) : ''}`);
    state.ws = ws;
    ws.onopen = () => { state.retry = 500; status('live'); subscribe(ws); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      const d = msg.data;
      switch (msg.type) {
        case 'bar':
          if (d.symbol === state.symbol) {
            putBar({ t: d.window_start, o: d.open, h: d.high, l: d.low, c: d.close, v: d.volume, n: d.trades, final: d.finality === 'final' });
          }
          break;
        case 'sentiment': if (d.symbol === state.symbol) putSentiment(d); break;
        case 'trending': showTrending(d); break;
        case 'alert': addAlert(d, true); break;
        case 'error': status('server: ' + msg.error); break;
        default: break;
      }
    };
    ws.onclose = (ev) => {
      status(`disconnected (${ev.code} ${ev.reason || ''}); reconnecting…`);
      setTimeout(connect, state.retry);
      state.retry = Math.min(state.retry * 2, 10000);
    };
  }

  $('picker').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.symbol = $('symbol').value.trim().toUpperCase();
    state.interval = $('interval').value;
    const url = new URL(location.href);
    url.searchParams.set('symbol', state.symbol);
    url.searchParams.set('interval', state.interval);
    history.replaceState(null, '', url);
    load().then(() => { if (state.ws) state.ws.close(); });
  });

  load().then(connect);
})();
