/**
 * The admin dashboard served at / by the admin listener: one self-contained
 * page (inline CSS and vanilla JS, nothing fetched from elsewhere). It follows
 * the live feed `api/events` (Server-Sent Events, one Snapshot a second),
 * computes rates from consecutive snapshots and polls `api/tunnels` every 2 s.
 * URLs are relative so the page works behind a path prefix. A `#token=…` in the
 * page URL is sent as a bearer token, and as `?token=` on the live feed, since
 * EventSource cannot set headers.
 *
 * Every piece of data is written with textContent, never as HTML. The script
 * holds no backticks, no dollar-brace and no backslashes, so the template
 * literal below carries it unchanged.
 */
export const DASHBOARD_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Switchyard · dashboard</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='4' fill='%232f6fde'/%3E%3Cpath d='M4 5h8M4 8h5M4 11h8' stroke='white' stroke-width='1.6' stroke-linecap='round'/%3E%3C/svg%3E">
<style>
  :root {
    color-scheme: light dark;
    --bg: #f4f6f9; --card: #ffffff; --fg: #18202c; --muted: #667085; --faint: #98a2b3;
    --border: #e4e7ec; --row: #f0f2f5; --grid: #e9ecf1;
    --in: #2f6fde; --out: #b05ad8; --req: #0e9f8a;
    --up: #1a7f37; --ejected: #d97706; --down: #d92d20; --draining: #8a8f98;
    --bad: #d92d20; --shadow: 0 1px 2px rgba(16, 24, 40, .06);
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --bg: #0e1116; --card: #161b22; --fg: #e6e9ef; --muted: #8b949e; --faint: #6e7681;
      --border: #262d37; --row: #1c222b; --grid: #232a33;
      --in: #5b9bff; --out: #d08bf0; --req: #2fc7ae;
      --up: #3fb950; --ejected: #f0a33a; --down: #f85149; --draining: #8b949e;
      --bad: #f85149; --shadow: none;
    }
  }
  * { box-sizing: border-box; }
  html { -webkit-text-size-adjust: 100%; }
  body {
    margin: 0; background: var(--bg); color: var(--fg);
    font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  }
  .num, td.n, .value { font-variant-numeric: tabular-nums; }
  header.top {
    display: flex; align-items: center; justify-content: space-between; gap: 12px; flex-wrap: wrap;
    padding: 12px 24px; background: var(--card); border-bottom: 1px solid var(--border);
  }
  .brand { display: flex; align-items: baseline; gap: 10px; min-width: 0; }
  .brand h1 { margin: 0; font-size: 18px; font-weight: 650; letter-spacing: -.01em; }
  .brand .sub { color: var(--muted); font-size: 13px; }
  .meta { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; color: var(--muted); font-size: 13px; }
  .pill { display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px; border-radius: 999px; border: 1px solid var(--border); background: var(--bg); color: var(--fg); font-size: 12px; white-space: nowrap; }
  .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--faint); flex: none; }
  #live.live .dot { background: var(--up); box-shadow: 0 0 0 3px color-mix(in srgb, var(--up) 25%, transparent); }
  #live.down .dot { background: var(--down); }
  #live.down { color: var(--down); }
  @media (prefers-reduced-motion: no-preference) {
    #live.live .dot { animation: pulse 2s ease-in-out infinite; }
    @keyframes pulse { 50% { box-shadow: 0 0 0 5px color-mix(in srgb, var(--up) 8%, transparent); } }
  }
  main { max-width: 1440px; margin: 0 auto; padding: 20px 24px 32px; display: grid; gap: 16px; }
  #notice { display: none; padding: 10px 14px; border-radius: 8px; border: 1px solid color-mix(in srgb, var(--bad) 40%, transparent); background: color-mix(in srgb, var(--bad) 10%, var(--card)); }
  #notice.show { display: block; }
  #notice code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
  .card { background: var(--card); border: 1px solid var(--border); border-radius: 10px; box-shadow: var(--shadow); padding: 14px 16px; min-width: 0; }
  .card > h2, .card-head h2 { margin: 0; font-size: 13px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
  .card-head { display: flex; align-items: center; justify-content: space-between; gap: 8px; flex-wrap: wrap; margin-bottom: 10px; }
  .card > h2 { margin-bottom: 10px; }
  .card-head .aside { color: var(--muted); font-size: 12px; }
  .stats { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 16px; }
  .stat { display: flex; flex-direction: column; gap: 2px; }
  .stat .label { color: var(--muted); font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
  .stat .value { font-size: 30px; font-weight: 650; line-height: 1.15; letter-spacing: -.02em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .stat .value .unit { font-size: 14px; font-weight: 500; color: var(--muted); margin-left: 3px; letter-spacing: 0; }
  .stat .pair { display: grid; grid-template-columns: auto 1fr; align-items: baseline; column-gap: 8px; }
  .stat .pair .value { font-size: 20px; }
  .stat .dir { font-size: 11px; font-weight: 600; text-transform: uppercase; color: var(--muted); display: inline-flex; align-items: center; gap: 5px; }
  .swatch { width: 8px; height: 8px; border-radius: 2px; display: inline-block; flex: none; }
  .stat .note { color: var(--muted); font-size: 12px; margin-top: auto; padding-top: 4px; }
  .stat.alert .value { color: var(--bad); }
  .charts { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 16px; }
  .legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: 12px; color: var(--muted); }
  .legend span { display: inline-flex; align-items: center; gap: 5px; white-space: nowrap; }
  .legend b { color: var(--fg); font-weight: 600; font-variant-numeric: tabular-nums; }
  .chart { position: relative; height: 150px; margin-top: 22px; }
  .chart svg { position: absolute; inset: 0; width: 100%; height: 100%; overflow: visible; display: block; }
  .chart .ylab { position: absolute; left: 0; font-size: 11px; color: var(--faint); transform: translateY(-100%); padding-bottom: 1px; pointer-events: none; font-variant-numeric: tabular-nums; }
  .chart-foot { display: flex; justify-content: space-between; font-size: 11px; color: var(--faint); margin-top: 4px; }
  .cols { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; align-items: start; }
  .stack { display: grid; gap: 14px; min-width: 0; }
  .stack > * { min-width: 0; }
  h3 { margin: 0 0 6px; font-size: 13px; font-weight: 600; display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
  h3 .aside { color: var(--muted); font-weight: 400; font-size: 12px; }
  .table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; padding: 6px 10px; border-bottom: 1px solid var(--border); white-space: nowrap; }
  td { padding: 6px 10px; border-bottom: 1px solid var(--row); white-space: nowrap; vertical-align: middle; }
  tr:last-child td { border-bottom: 0; }
  th:first-child, td:first-child { padding-left: 0; }
  th:last-child, td:last-child { padding-right: 0; }
  th.n, td.n { text-align: right; }
  td .muted, .muted { color: var(--muted); }
  td .small { font-size: 12px; }
  td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
  td.clip { max-width: 560px; overflow: hidden; text-overflow: ellipsis; }
  .badge { display: inline-flex; align-items: center; gap: 5px; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; }
  .badge::before { content: ""; width: 6px; height: 6px; border-radius: 50%; background: currentColor; }
  .badge.up { color: var(--up); background: color-mix(in srgb, var(--up) 14%, transparent); }
  .badge.ejected { color: var(--ejected); background: color-mix(in srgb, var(--ejected) 16%, transparent); }
  .badge.down { color: var(--down); background: color-mix(in srgb, var(--down) 14%, transparent); }
  .badge.draining { color: var(--draining); background: color-mix(in srgb, var(--draining) 18%, transparent); }
  .status { display: inline-block; min-width: 36px; text-align: center; padding: 0 6px; border-radius: 4px; font-weight: 600; font-size: 12px; }
  .status.s5 { color: var(--bad); background: color-mix(in srgb, var(--bad) 14%, transparent); }
  .status.s4 { color: var(--ejected); background: color-mix(in srgb, var(--ejected) 16%, transparent); }
  .status.s0 { color: var(--muted); background: var(--row); }
  .share { display: inline-block; width: 60px; height: 6px; border-radius: 3px; background: var(--row); overflow: hidden; vertical-align: middle; margin-left: 8px; }
  .share i { display: block; height: 100%; background: var(--in); border-radius: 3px; }
  .empty { color: var(--muted); padding: 14px 0; text-align: center; font-size: 13px; margin: 0; }
  .upstream + .upstream { margin-top: 6px; padding-top: 10px; border-top: 1px solid var(--border); }
  .seg { display: inline-flex; border: 1px solid var(--border); border-radius: 7px; overflow: hidden; }
  .seg button { font: inherit; font-size: 12px; border: 0; background: transparent; color: var(--muted); padding: 3px 10px; cursor: pointer; }
  .seg button + button { border-left: 1px solid var(--border); }
  .seg button[aria-pressed="true"] { background: var(--row); color: var(--fg); font-weight: 600; }
  footer { color: var(--faint); font-size: 12px; text-align: center; padding: 0 16px 24px; }
  @media (max-width: 1100px) {
    .stats { grid-template-columns: repeat(3, minmax(0, 1fr)); }
    .charts { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  }
  @media (max-width: 700px) {
    header.top { padding: 10px 14px; }
    main { padding: 12px; gap: 12px; }
    .stats { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }
    .charts, .cols { grid-template-columns: minmax(0, 1fr); gap: 12px; }
    .card { padding: 12px; }
    .stat .value { font-size: 24px; }
    .stat .pair .value { font-size: 17px; }
    .brand .sub, #updated { display: none; }
    header.top { flex-wrap: nowrap; }
    .chart { height: 120px; }
    td.clip { max-width: 200px; }
  }
</style>
</head>
<body>
<header class="top">
  <div class="brand"><h1>Switchyard</h1><span class="sub">admin dashboard</span></div>
  <div class="meta">
    <span class="pill"><span id="processes" class="num">–</span></span>
    <span id="updated" class="num"></span>
    <span id="live" class="pill connecting" role="status" aria-live="polite"><span class="dot"></span><span id="live-text">connecting…</span></span>
  </div>
</header>
<main>
  <div id="notice" role="alert"></div>

  <section class="stats" aria-label="Totals">
    <div class="card stat">
      <span class="label">Requests / s</span>
      <span class="value" id="requests-rate">–</span>
      <span class="note" id="in-flight">– in flight</span>
    </div>
    <div class="card stat">
      <span class="label">Open tunnels</span>
      <span class="value" id="tunnels-open">–</span>
      <span class="note" id="tunnels-total">– opened in all</span>
    </div>
    <div class="card stat">
      <span class="label">Connections</span>
      <span class="value" id="connections">–</span>
      <span class="note">client connections</span>
    </div>
    <div class="card stat">
      <span class="label">Bytes / s</span>
      <div class="pair">
        <span class="dir"><i class="swatch" style="background: var(--in)"></i>in</span><span class="value" id="bytes-in-rate">–</span>
        <span class="dir"><i class="swatch" style="background: var(--out)"></i>out</span><span class="value" id="bytes-out-rate">–</span>
      </div>
    </div>
    <div class="card stat">
      <span class="label">Messages / s</span>
      <div class="pair">
        <span class="dir"><i class="swatch" style="background: var(--in)"></i>in</span><span class="value" id="messages-in-rate">–</span>
        <span class="dir"><i class="swatch" style="background: var(--out)"></i>out</span><span class="value" id="messages-out-rate">–</span>
      </div>
    </div>
    <div class="card stat" id="errors-card">
      <span class="label">5xx / s</span>
      <span class="value" id="errors-rate">–</span>
      <span class="note" id="errors-share">–</span>
    </div>
  </section>

  <section class="charts" aria-label="Graphs">
    <div class="card" id="chart-requests"></div>
    <div class="card" id="chart-bytes"></div>
    <div class="card" id="chart-messages"></div>
  </section>

  <section class="cols">
    <div class="card">
      <div class="card-head"><h2>Open tunnels by route and backend</h2></div>
      <div id="routes" class="stack"></div>
    </div>
    <div class="card">
      <div class="card-head"><h2>Backends</h2><span class="aside" id="backends-summary"></span></div>
      <div id="backends"></div>
    </div>
  </section>

  <section class="card">
    <div class="card-head"><h2>Recent errors</h2><span class="aside" id="errors-count"></span></div>
    <div id="errors"></div>
  </section>

  <section class="card">
    <div class="card-head">
      <h2>Open tunnels</h2>
      <div class="meta">
        <span class="aside" id="tunnels-count"></span>
        <span class="seg" role="group" aria-label="Order">
          <button type="button" id="sort-age" aria-pressed="true">Oldest</button><button type="button" id="sort-bytes" aria-pressed="false">Most active</button>
        </span>
      </div>
    </div>
    <div id="tunnels"></div>
  </section>
</main>
<footer>Rates come from the difference between consecutive snapshots · graphs show the last 2 minutes</footer>
<noscript><p class="empty">The dashboard needs JavaScript.</p></noscript>
<script>
(function () {
  'use strict';
  const HISTORY = 120;
  const STALE_MS = 5000;
  const TUNNELS_MS = 2000;
  const TUNNELS_SHOWN = 20;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const tokenMatch = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  const token = tokenMatch ? decodeURIComponent(tokenMatch[1]) : '';
  const eventsUrl = 'api/events' + (token ? '?token=' + encodeURIComponent(token) : '');
  const fetchHeaders = token ? { Authorization: 'Bearer ' + token, Accept: 'application/json' } : { Accept: 'application/json' };

  const state = window.dashboard = { snapshots: 0, connected: false, last: null, rates: null, history: [], tunnels: null };
  let previous = null;
  let lastMessageAt = 0;
  let tunnelOrder = 'age';

  const byId = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const name in attrs) node.setAttribute(name, attrs[name]);
    return node;
  }
  function num(value) { return typeof value === 'number' && isFinite(value) ? value : 0; }
  function str(value) { return value === undefined || value === null ? '' : String(value); }

  // ---- formatting ----
  function fmtCount(value) { return Math.round(num(value)).toLocaleString('en-US'); }
  function fmtRate(value) {
    if (value === null || value === undefined || !isFinite(value)) return '–';
    if (value < 0.05) return '0';
    if (value < 10) return value.toFixed(1);
    if (value < 10000) return String(Math.round(value));
    if (value < 1e6) return (value / 1e3).toFixed(value < 1e5 ? 1 : 0) + 'k';
    return (value / 1e6).toFixed(1) + 'M';
  }
  const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];
  function bytesParts(value) {
    let v = num(value);
    let i = 0;
    while (v >= 1000 && i < BYTE_UNITS.length - 1) { v /= 1000; i++; }
    const text = i === 0 || v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
    return [text, BYTE_UNITS[i]];
  }
  function fmtBytes(value) { const p = bytesParts(value); return p[0] + ' ' + p[1]; }
  function fmtAge(seconds) {
    const s = Math.max(0, Math.floor(num(seconds)));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }
  function pad2(n) { return n < 10 ? '0' + n : String(n); }
  function clock(date) { return pad2(date.getHours()) + ':' + pad2(date.getMinutes()) + ':' + pad2(date.getSeconds()); }
  function fmtTime(value) {
    const date = new Date(value);
    return isNaN(date.getTime()) ? str(value) : clock(date);
  }

  function setValue(id, text, unit) {
    const node = byId(id);
    node.textContent = text;
    if (unit) {
      node.append(' ');
      node.append(el('span', 'unit', unit));
    }
  }
  function setBytesRate(id, rate) {
    if (rate === null) { setValue(id, '–'); return; }
    const parts = bytesParts(rate);
    setValue(id, parts[0], parts[1] + '/s');
  }

  // ---- tables ----
  function table(columns, rows) {
    const wrap = el('div', 'table-wrap');
    const t = el('table');
    const head = el('thead');
    const headRow = el('tr');
    for (const column of columns) headRow.append(el('th', column.n ? 'n' : '', column.label));
    head.append(headRow);
    const body = el('tbody');
    for (const row of rows) body.append(row);
    t.append(head, body);
    wrap.append(t);
    return wrap;
  }
  function cell(content, className, title) {
    const td = el('td', className || '');
    if (content instanceof Node) td.append(content);
    else td.textContent = str(content);
    if (title) td.title = title;
    return td;
  }
  function twoLine(main, sub) {
    const span = el('span');
    span.append(el('span', '', main));
    if (sub) { span.append(' '); span.append(el('span', 'muted small', sub)); }
    return span;
  }
  function replace(container, ...nodes) { container.replaceChildren(...nodes); }

  // ---- charts ----
  function makeChart(containerId, title, series, format, axisFormat) {
    const root = byId(containerId);
    const head = el('div', 'card-head');
    head.append(el('h2', '', title));
    const legend = el('div', 'legend');
    const values = [];
    for (const s of series) {
      const item = el('span');
      const swatch = el('i', 'swatch');
      swatch.style.background = s.color;
      const value = el('b', '', '–');
      item.append(swatch, s.label + ' ', value);
      legend.append(item);
      values.push(value);
    }
    head.append(legend);
    const box = el('div', 'chart');
    const W = 600, H = 150;
    const graph = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
    const grid = [0.25, 0.5, 0.75, 1].map((f) => {
      const y = H - f * H;
      return svg('line', { x1: 0, x2: W, y1: y, y2: y, stroke: 'var(--grid)', 'stroke-width': 1, 'vector-effect': 'non-scaling-stroke', 'stroke-dasharray': f === 1 ? '' : '3 3' });
    });
    const base = svg('line', { x1: 0, x2: W, y1: H, y2: H, stroke: 'var(--border)', 'stroke-width': 1, 'vector-effect': 'non-scaling-stroke' });
    graph.append(...grid, base);
    const paths = series.map((s) => {
      const area = svg('path', { fill: s.color, 'fill-opacity': 0.12, stroke: 'none' });
      const line = svg('path', { fill: 'none', stroke: s.color, 'stroke-width': 1.75, 'stroke-linejoin': 'round', 'vector-effect': 'non-scaling-stroke' });
      graph.append(area, line);
      return { area, line };
    });
    const top = el('span', 'ylab');
    top.style.top = '0%';
    const mid = el('span', 'ylab');
    mid.style.top = '50%';
    box.append(graph, top, mid);
    const foot = el('div', 'chart-foot');
    foot.append(el('span', '', '2 min ago'), el('span', '', '1 min'), el('span', '', 'now'));
    root.append(head, box, foot);

    return function draw(history) {
      let max = 0;
      for (const sample of history) for (const s of series) max = Math.max(max, num(sample[s.key]));
      const scale = niceCeil(max);
      top.textContent = (axisFormat || format)(scale);
      mid.textContent = (axisFormat || format)(scale / 2);
      const offset = HISTORY - history.length;
      series.forEach((s, index) => {
        const p = paths[index];
        const last = history[history.length - 1];
        values[index].textContent = last ? format(num(last[s.key])) : '–';
        if (history.length < 2) { p.line.setAttribute('d', ''); p.area.setAttribute('d', ''); return; }
        let d = '';
        let firstX = 0, lastX = 0;
        history.forEach((sample, i) => {
          const x = ((offset + i) / (HISTORY - 1)) * W;
          const y = H - (num(sample[s.key]) / scale) * H;
          if (i === 0) firstX = x;
          lastX = x;
          d += (i === 0 ? 'M' : 'L') + x.toFixed(1) + ' ' + y.toFixed(1);
        });
        p.line.setAttribute('d', d);
        p.area.setAttribute('d', d + 'L' + lastX.toFixed(1) + ' ' + H + 'L' + firstX.toFixed(1) + ' ' + H + 'Z');
      });
    };
  }
  function niceCeil(value) {
    if (!(value > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * exp) return step * exp;
    return 10 * exp;
  }

  const drawRequests = makeChart('chart-requests', 'Requests / s', [
    { key: 'requests', label: 'requests', color: 'var(--req)' },
    { key: 'errors', label: '5xx', color: 'var(--bad)' },
  ], fmtRate);
  const drawBytes = makeChart('chart-bytes', 'Bytes / s', [
    { key: 'bytesIn', label: 'in', color: 'var(--in)' },
    { key: 'bytesOut', label: 'out', color: 'var(--out)' },
  ], (v) => fmtBytes(v) + '/s', (v) => { const p = bytesParts(v); return parseFloat(p[0]) + ' ' + p[1] + '/s'; });
  const drawMessages = makeChart('chart-messages', 'Messages / s', [
    { key: 'messagesIn', label: 'in', color: 'var(--in)' },
    { key: 'messagesOut', label: 'out', color: 'var(--out)' },
  ], fmtRate);

  // ---- live indicator ----
  function setLive(mode, text) {
    const live = byId('live');
    live.className = 'pill ' + mode;
    byId('live-text').textContent = text;
    state.connected = mode === 'live';
  }
  function notice(text, code) {
    const box = byId('notice');
    if (!text) { box.className = ''; box.replaceChildren(); return; }
    box.replaceChildren(document.createTextNode(text));
    if (code) { box.append(' '); box.append(el('code', '', code)); }
    box.className = 'show';
  }

  // ---- snapshot ----
  function totals(snapshot) {
    const sum = { requests: 0, errors: 0, tunnelsOpen: 0, tunnelsTotal: 0, bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 };
    for (const route of snapshot.routes || []) for (const key in sum) sum[key] += num(route[key]);
    return sum;
  }

  function onSnapshot(snapshot) {
    const now = num(snapshot.time) || Date.now();
    const sum = totals(snapshot);
    let rates = null;
    if (previous && now > previous.time) {
      const dt = (now - previous.time) / 1000;
      rates = {};
      for (const key of ['requests', 'errors', 'bytesIn', 'bytesOut', 'messagesIn', 'messagesOut']) {
        // Counters can go back (a worker restarted, a route went away): never show a negative rate.
        rates[key] = Math.max(0, (sum[key] - previous.sum[key]) / dt);
      }
      state.history.push(Object.assign({ time: now }, rates));
      if (state.history.length > HISTORY) state.history.splice(0, state.history.length - HISTORY);
    }
    previous = { time: now, sum };
    state.snapshots++;
    state.last = snapshot;
    state.rates = rates;

    const processes = num(snapshot.processes);
    byId('processes').textContent = processes + (processes === 1 ? ' process' : ' processes');
    byId('updated').textContent = 'updated ' + clock(new Date(now));

    setValue('requests-rate', rates ? fmtRate(rates.requests) : '–');
    byId('in-flight').textContent = fmtCount(snapshot.inFlight) + ' in flight';
    setValue('tunnels-open', fmtCount(sum.tunnelsOpen));
    byId('tunnels-total').textContent = fmtCount(sum.tunnelsTotal) + ' opened in all';
    setValue('connections', fmtCount(snapshot.connections));
    setBytesRate('bytes-in-rate', rates ? rates.bytesIn : null);
    setBytesRate('bytes-out-rate', rates ? rates.bytesOut : null);
    setValue('messages-in-rate', rates ? fmtRate(rates.messagesIn) : '–');
    setValue('messages-out-rate', rates ? fmtRate(rates.messagesOut) : '–');
    setValue('errors-rate', rates ? fmtRate(rates.errors) : '–');
    byId('errors-card').classList.toggle('alert', !!rates && rates.errors >= 0.05);
    byId('errors-share').textContent = rates && rates.requests > 0
      ? (100 * rates.errors / rates.requests).toFixed(rates.errors / rates.requests < 0.1 ? 2 : 1) + '% of requests'
      : fmtCount(sum.errors) + ' in all';

    drawRequests(state.history);
    drawBytes(state.history);
    drawMessages(state.history);
    renderRoutes(snapshot, sum);
    renderBackends(snapshot);
    renderErrors(snapshot);
  }

  function renderRoutes(snapshot, sum) {
    const routes = (snapshot.routes || []).slice().sort((a, b) => (str(a.site) + ' ' + str(a.route)).localeCompare(str(b.site) + ' ' + str(b.route)));
    const sites = new Set(routes.map((r) => str(r.site)));
    const routeBlock = el('div');
    routeBlock.append(el('h3', '', 'By route'));
    if (routes.length === 0) routeBlock.append(el('p', 'empty', 'No routes yet'));
    else {
      routeBlock.append(table(
        [{ label: 'Route' }, { label: 'Open', n: true }, { label: 'Total', n: true }, { label: 'Requests', n: true }, { label: '5xx', n: true }],
        routes.map((route) => {
          const tr = el('tr');
          tr.dataset.route = str(route.route);
          tr.append(
            cell(twoLine(str(route.route), sites.size > 1 ? str(route.site) : '')),
            cell(fmtCount(route.tunnelsOpen), 'n'),
            cell(fmtCount(route.tunnelsTotal), 'n'),
            cell(fmtCount(route.requests), 'n'),
            cell(fmtCount(route.errors), num(route.errors) > 0 ? 'n' : 'n muted'),
          );
          return tr;
        }),
      ));
    }
    const serverBlock = el('div');
    serverBlock.append(el('h3', '', 'By backend server'));
    const rows = [];
    for (const upstream of snapshot.upstreams || []) {
      for (const server of upstream.servers || []) {
        const tr = el('tr');
        tr.dataset.server = str(server.url);
        const share = el('span', 'share');
        const bar = el('i');
        bar.style.width = (sum.tunnelsOpen > 0 ? Math.round(100 * num(server.tunnels) / sum.tunnelsOpen) : 0) + '%';
        share.append(bar);
        const tunnels = el('span');
        tunnels.append(el('span', '', fmtCount(server.tunnels)), share);
        tr.append(cell(twoLine(str(server.url), str(upstream.name)), 'mono'), cell(tunnels, 'n'), cell(fmtCount(server.active), 'n'));
        rows.push(tr);
      }
    }
    if (rows.length === 0) serverBlock.append(el('p', 'empty', 'No upstreams'));
    else serverBlock.append(table([{ label: 'Server' }, { label: 'Tunnels', n: true }, { label: 'Active', n: true }], rows));
    replace(byId('routes'), routeBlock, serverBlock);
  }

  const STATES = ['up', 'ejected', 'down', 'draining'];
  function renderBackends(snapshot) {
    const upstreams = snapshot.upstreams || [];
    const counts = { up: 0, ejected: 0, down: 0, draining: 0 };
    const blocks = upstreams.map((upstream) => {
      const servers = upstream.servers || [];
      const block = el('div', 'upstream');
      block.dataset.upstream = str(upstream.name);
      const local = { up: 0, ejected: 0, down: 0, draining: 0 };
      for (const server of servers) if (STATES.includes(server.state)) { local[server.state]++; counts[server.state]++; }
      const title = el('h3', '', str(upstream.name));
      title.append(el('span', 'aside', STATES.filter((s) => local[s] > 0).map((s) => local[s] + ' ' + s).join(' · ') || 'no servers'));
      block.append(title);
      if (servers.length > 0) {
        block.append(table(
          [{ label: 'Server' }, { label: 'State' }, { label: 'Weight', n: true }, { label: 'Active', n: true }, { label: 'Tunnels', n: true }, { label: 'Ejections', n: true }],
          servers.map((server) => {
            const tr = el('tr');
            tr.dataset.server = str(server.url);
            const stateName = STATES.includes(server.state) ? server.state : 'down';
            tr.append(
              cell(str(server.url), 'mono'),
              cell(el('span', 'badge ' + stateName, str(server.state))),
              cell(fmtCount(server.weight), 'n'),
              cell(fmtCount(server.active), 'n'),
              cell(fmtCount(server.tunnels), 'n'),
              cell(fmtCount(server.ejections), 'n' + (num(server.ejections) > 0 ? '' : ' muted')),
            );
            return tr;
          }),
        ));
      }
      return block;
    });
    if (blocks.length === 0) replace(byId('backends'), el('p', 'empty', 'No upstreams configured'));
    else replace(byId('backends'), ...blocks);
    byId('backends-summary').textContent = STATES.filter((s) => counts[s] > 0).map((s) => counts[s] + ' ' + s).join(' · ');
  }

  function renderErrors(snapshot) {
    const errors = (snapshot.recentErrors || []).slice().reverse();
    byId('errors-count').textContent = errors.length ? errors.length + ' kept' : '';
    if (errors.length === 0) { replace(byId('errors'), el('p', 'empty', 'No recent errors')); return; }
    replace(byId('errors'), table(
      [{ label: 'Time' }, { label: 'Status' }, { label: 'Code' }, { label: 'Route' }, { label: 'Path' }],
      errors.map((error) => {
        const tr = el('tr');
        const status = num(error.status);
        const badge = el('span', 'status ' + (status >= 500 ? 's5' : status >= 400 ? 's4' : 's0'), status ? String(status) : '–');
        tr.append(
          cell(fmtTime(error.time), 'num muted', str(error.time)),
          cell(badge),
          cell(str(error.code), 'mono'),
          cell(twoLine(str(error.route) || '–', error.upstream ? '→ ' + str(error.upstream) : '')),
          cell(str(error.path), 'mono clip', str(error.path)),
        );
        return tr;
      }),
    ));
  }

  // ---- tunnels ----
  function renderTunnels() {
    const list = state.tunnels;
    if (!list) return;
    const activity = (t) => num(t.bytesFromClient) + num(t.bytesFromBackend);
    const sorted = list.slice().sort(tunnelOrder === 'age'
      ? (a, b) => num(b.ageSeconds) - num(a.ageSeconds) || activity(b) - activity(a)
      : (a, b) => activity(b) - activity(a) || num(b.ageSeconds) - num(a.ageSeconds));
    const shown = sorted.slice(0, TUNNELS_SHOWN);
    byId('tunnels-count').textContent = list.length > shown.length ? shown.length + ' of ' + fmtCount(list.length) : fmtCount(list.length) + ' open';
    if (shown.length === 0) { replace(byId('tunnels'), el('p', 'empty', 'No open tunnels')); return; }
    replace(byId('tunnels'), table(
      [{ label: 'Client' }, { label: 'Route' }, { label: 'Server' }, { label: 'Age', n: true }, { label: 'Bytes in / out', n: true }, { label: 'Msgs in / out', n: true }],
      shown.map((t) => {
        const tr = el('tr');
        tr.dataset.id = str(t.id);
        tr.append(
          cell(str(t.client), 'mono'),
          cell(twoLine(str(t.route), str(t.protocol))),
          cell(str(t.server), 'mono', str(t.upstream)),
          cell(fmtAge(t.ageSeconds), 'n'),
          cell(fmtBytes(t.bytesFromClient) + ' / ' + fmtBytes(t.bytesFromBackend), 'n'),
          cell(fmtCount(t.messagesFromClient) + ' / ' + fmtCount(t.messagesFromBackend), 'n'),
        );
        return tr;
      }),
    ));
  }

  async function pollTunnels() {
    if (!document.hidden) {
      try {
        const response = await fetch('api/tunnels', { headers: fetchHeaders, cache: 'no-store' });
        if (response.status === 401) {
          if (token) notice('The admin API refused the token given in the page URL. Open this page with the right one:', '#token=YOUR_TOKEN');
          else notice('The admin API needs a token: open this page with', '#token=YOUR_TOKEN');
        } else if (response.ok) {
          const body = await response.json();
          state.tunnels = Array.isArray(body) ? body : [];
          renderTunnels();
        }
      } catch (err) {
        // The live indicator already says when the admin listener is unreachable.
      }
    }
    setTimeout(pollTunnels, TUNNELS_MS);
  }

  function setOrder(order) {
    tunnelOrder = order;
    byId('sort-age').setAttribute('aria-pressed', String(order === 'age'));
    byId('sort-bytes').setAttribute('aria-pressed', String(order === 'bytes'));
    renderTunnels();
  }
  byId('sort-age').addEventListener('click', () => setOrder('age'));
  byId('sort-bytes').addEventListener('click', () => setOrder('bytes'));

  // ---- live feed ----
  let source = null;
  function connect() {
    source = new EventSource(eventsUrl);
    source.onopen = () => { lastMessageAt = Date.now(); setLive('live', 'live'); };
    source.onmessage = (event) => {
      let snapshot;
      try { snapshot = JSON.parse(event.data); } catch (err) { return; }
      if (!snapshot || typeof snapshot !== 'object') return;
      lastMessageAt = Date.now();
      setLive('live', 'live');
      notice('');
      onSnapshot(snapshot);
    };
    source.onerror = () => {
      setLive('down', 'disconnected');
      // The browser retries by itself unless the response was not a stream (401, 404...): then retry here.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, 5000);
      }
    };
  }
  setInterval(() => {
    if (state.connected && Date.now() - lastMessageAt > STALE_MS) setLive('down', 'disconnected');
  }, 1000);

  // The token is read once: a new one pasted into the URL takes effect by reloading.
  window.addEventListener('hashchange', () => location.reload());
  connect();
  pollTunnels();
})();
</script>
</body>
</html>
`;
