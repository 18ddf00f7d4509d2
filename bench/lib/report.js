// Markdown tables for the bench results.

export function median(values) {
  const list = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (list.length === 0) return undefined;
  const mid = list.length >> 1;
  return list.length % 2 ? list[mid] : (list[mid - 1] + list[mid]) / 2;
}

function finite(values) {
  return values.filter((v) => typeof v === 'number' && Number.isFinite(v));
}

/** 24 691 / 3.42 / 0.512: three significant figures at least, thin grouping of thousands. */
export function num(value) {
  if (value === undefined || value === null || !Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  const [int, frac] = value.toFixed(digits).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  return frac ? `${grouped}.${frac}` : grouped;
}

export function ratio(value, base) {
  if (!Number.isFinite(value) || !Number.isFinite(base) || base === 0) return '—';
  return `${(value / base).toFixed(2)}×`;
}

function range(values) {
  const list = finite(values);
  if (list.length < 2) return '';
  return `${num(Math.min(...list))} – ${num(Math.max(...list))}`;
}

/** `textColumns` leading columns are left-aligned, the rest (numbers) right-aligned; `textTail` trailing ones left too. */
function table(header, rows, textColumns = 1, textTail = 0) {
  const align = header.map((_, i) => (i < textColumns || i >= header.length - textTail ? ' --- ' : ' ---: '));
  const lines = [`| ${header.join(' | ')} |`, `|${align.join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

/**
 * Table 1: one row per (measure, target): median over rounds, the range over
 * rounds, and the median's ratio to nginx's and to direct's median. Targets in
 * `measure.notApplicable` get "n/a" (e.g. direct for HTTP/2: a plain origin).
 * With a "baseline" target (a second Switchyard build), a `× baseline` column
 * gives switchyard ÷ baseline on the switchyard rows.
 */
export function ratesTable(measures, targets, values) {
  const withBaseline = targets.includes('baseline') && targets.includes('switchyard');
  const rows = [];
  for (const measure of measures) {
    const med = Object.fromEntries(targets.map((t) => [t, median(values[t]?.[measure.key] ?? [])]));
    if (targets.every((t) => med[t] === undefined)) continue;
    for (const target of targets) {
      if (measure.notApplicable?.includes(target)) {
        rows.push([measure.label, target, 'n/a', '', 'n/a', 'n/a', ...(withBaseline ? [''] : [])]);
        continue;
      }
      rows.push([
        measure.label,
        target,
        num(med[target]),
        range(values[target]?.[measure.key] ?? []),
        target === 'nginx' ? '1.00×' : ratio(med[target], med.nginx),
        target === 'direct' ? '1.00×' : ratio(med[target], med.direct),
        ...(withBaseline ? [target === 'switchyard' ? ratio(med.switchyard, med.baseline) : ''] : []),
      ]);
    }
  }
  return table(['Measure', 'Target', 'Median', 'Range over rounds', '× nginx', '× direct', ...(withBaseline ? ['× baseline'] : [])], rows, 2);
}

/**
 * Table 2: proxy cost per unit of work (median over rounds) for each proxy, the
 * ratio to nginx, and Switchyard's target with pass/miss. With a "baseline"
 * proxy (a second Switchyard build), a `switchyard ÷ baseline` column too.
 */
export function costTable(costs, proxies, values) {
  const withBaseline = proxies.includes('baseline') && proxies.includes('switchyard');
  const rows = [];
  for (const cost of costs) {
    const med = Object.fromEntries(proxies.map((p) => [p, median(values[p]?.[cost.key] ?? [])]));
    if (proxies.every((p) => med[p] === undefined)) continue;
    const sy = med.switchyard;
    let verdict = '—';
    let targetText = '';
    if (cost.maxRatio !== undefined) {
      targetText = `≤ ${cost.maxRatio.toFixed(1)}× nginx`;
      if (Number.isFinite(sy) && Number.isFinite(med.nginx)) verdict = sy / med.nginx <= cost.maxRatio ? 'pass' : '**miss**';
    } else if (cost.maxAbsolute !== undefined) {
      targetText = `≤ ${cost.maxAbsolute} ${cost.unit}`;
      if (Number.isFinite(sy)) verdict = sy <= cost.maxAbsolute ? 'pass' : '**miss**';
    }
    if (cost.extraCheck && verdict !== '—') {
      const extra = cost.extraCheck(values.switchyard ?? {});
      if (extra) {
        targetText += `, ${extra.text}`;
        if (!extra.ok) verdict = '**miss**';
      }
    }
    rows.push([
      cost.label,
      ...proxies.map((p) => num(med[p])),
      ...proxies.filter((p) => p !== 'nginx').map((p) => ratio(med[p], med.nginx)),
      ...(withBaseline ? [ratio(sy, med.baseline)] : []),
      targetText,
      proxies.includes('switchyard') ? verdict : '—',
    ]);
  }
  const others = proxies.filter((p) => p !== 'nginx');
  return table(['Proxy cost (median)', ...proxies, ...others.map((p) => `${p} ÷ nginx`), ...(withBaseline ? ['switchyard ÷ baseline'] : []), withBaseline ? 'Switchyard target (÷ nginx)' : 'Switchyard target', 'Result'], rows, 1, 2);
}

/** Table 3: how busy each proxy was (CPU seconds per wall second, 100 % = one core). */
export function loadTable(phases, proxies, values) {
  const rows = [];
  for (const phase of phases) {
    const cells = proxies.map((p) => {
      const m = median(values[p]?.[phase.key] ?? []);
      return m === undefined ? '—' : `${Math.round(m * 100)} %`;
    });
    if (cells.every((c) => c === '—')) continue;
    rows.push([phase.label, ...cells]);
  }
  return table(['Proxy CPU load during the phase (median)', ...proxies], rows);
}

/**
 * The routing-cost tables: Switchyard with 1 route and with `routes` routes
 * (median over rounds, range), the ratio of the two, and the "within 5 %" target.
 * `values[routes][key]`, keys rate, p99, cpu, load.
 */
export function routingTable(values, routes, rounds) {
  const one = values[1] ?? {};
  const many = values[routes] ?? {};
  const med = (v, key) => median(v[key] ?? []);
  const row = (label, v) => [label, num(med(v, 'rate')), range(v.rate ?? []), num(med(v, 'p99')), num(med(v, 'cpu')), med(v, 'load') === undefined ? '—' : `${Math.round(med(v, 'load') * 100)} %`];
  const rateRatio = med(many, 'rate') / med(one, 'rate');
  const cpuRatio = med(many, 'cpu') / med(one, 'cpu');
  const lines = [table(['Config', 'req/s', 'Range over rounds', 'p99 ms', 'CPU µs per request', 'Proxy CPU load'], [
    row('1 route', one),
    row(`${routes} routes`, many),
    [`${routes} ÷ 1`, ratio(med(many, 'rate'), med(one, 'rate')), '', ratio(med(many, 'p99'), med(one, 'p99')), ratio(med(many, 'cpu'), med(one, 'cpu')), ''],
  ])];
  lines.push('');
  const verdict = (ok) => (ok === undefined ? '—' : ok ? 'pass' : '**miss**');
  lines.push(table(['Target', 'Measured', 'Result'], [
    [`requests/s with ${routes} routes within 5 % of 1 route (ratio ≥ 0.95)`, Number.isFinite(rateRatio) ? `${rateRatio.toFixed(3)}×` : '—', verdict(Number.isFinite(rateRatio) ? rateRatio >= 0.95 : undefined)],
    [`CPU µs per request with ${routes} routes within 5 % of 1 route (ratio ≤ 1.05; steadier than req/s when the proxy is not the bottleneck)`, Number.isFinite(cpuRatio) ? `${cpuRatio.toFixed(3)}×` : '—', verdict(Number.isFinite(cpuRatio) ? cpuRatio <= 1.05 : undefined)],
  ], 1, 1));
  if (rounds > 1) {
    const ratios = (key) => {
      const a = one[key] ?? [];
      const b = many[key] ?? [];
      return a.length === b.length ? a.map((x, i) => b[i] / x) : [];
    };
    const medianRatio = (key) => {
      const m = median(ratios(key));
      return m === undefined ? '—' : `${m.toFixed(3)}×`;
    };
    const perRound = (key) => {
      const a = one[key] ?? [];
      const b = many[key] ?? [];
      if (a.length !== b.length || a.length === 0) return '—';
      return a.map((x, i) => (b[i] / x).toFixed(3)).join(', ');
    };
    lines.push('');
    lines.push(`Per round (${routes} ÷ 1, each round's pair measured back to back): req/s ${perRound('rate')} (median ${medianRatio('rate')}); CPU µs per request ${perRound('cpu')} (median ${medianRatio('cpu')}).`);
  }
  return lines.join('\n');
}

/** Per-round ratios a[i] ÷ b[i] when both have one value per round (else []). */
function pairedRatios(a = [], b = []) {
  if (a.length !== b.length) return [];
  return a.map((x, i) => x / b[i]).filter((r) => Number.isFinite(r));
}

/**
 * Switchyard against its baseline build (--baseline): one row per measure both
 * have: the medians, switchyard ÷ baseline (of the medians), with 2+ rounds the
 * per-round ratios and their median, and for measures with `maxRatio` the
 * target (ratio ≤ maxRatio) with pass/miss. `percent`: the values are loads
 * (CPU seconds per wall second), shown as %.
 */
export function baselineTable(measures, sy, base, rounds) {
  const rows = [];
  const show = (m, v) => (v === undefined ? '—' : m.percent ? `${Math.round(v * 100)} %` : num(v));
  for (const m of measures) {
    const a = median(sy[m.key] ?? []);
    const b = median(base[m.key] ?? []);
    if (a === undefined || b === undefined) continue;
    const r = a / b;
    let targetText = '';
    let verdict = '';
    if (m.maxRatio !== undefined) {
      targetText = `≤ ${m.maxRatio.toFixed(2)}× (within ${Math.round((m.maxRatio - 1) * 100)} %)`;
      verdict = Number.isFinite(r) ? (r <= m.maxRatio ? 'pass' : '**miss**') : '—';
    }
    const perRound = pairedRatios(sy[m.key], base[m.key]);
    const perRoundText = perRound.length > 1 ? `${perRound.map((x) => x.toFixed(3)).join(', ')} (median ${median(perRound).toFixed(3)})` : '';
    rows.push([m.label, show(m, a), show(m, b), Number.isFinite(r) ? `${r.toFixed(3)}×` : '—', ...(rounds > 1 ? [perRoundText] : []), targetText, verdict]);
  }
  return table(['Measure (median)', 'switchyard', 'baseline', 'switchyard ÷ baseline', ...(rounds > 1 ? ['Per round'] : []), 'Target', 'Result'], rows, 1, 2);
}

/** The routing phase, switchyard ÷ baseline for each config: req/s, p99, CPU per request. */
export function routingBaselineTable(sy, base, routes) {
  const med = (v, routesKey, key) => median(v[routesKey]?.[key] ?? []);
  const rows = [1, routes].map((n) => [
    n === 1 ? '1 route' : `${n} routes`,
    ratio(med(sy, n, 'rate'), med(base, n, 'rate')),
    ratio(med(sy, n, 'p99'), med(base, n, 'p99')),
    ratio(med(sy, n, 'cpu'), med(base, n, 'cpu')),
  ]);
  return table(['Config', 'req/s, switchyard ÷ baseline', 'p99, switchyard ÷ baseline', 'CPU µs per request, switchyard ÷ baseline'], rows);
}
