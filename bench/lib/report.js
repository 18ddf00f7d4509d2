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
 * rounds, and the median's ratio to nginx's and to direct's median.
 */
export function ratesTable(measures, targets, values) {
  const rows = [];
  for (const measure of measures) {
    const med = Object.fromEntries(targets.map((t) => [t, median(values[t]?.[measure.key] ?? [])]));
    if (targets.every((t) => med[t] === undefined)) continue;
    for (const target of targets) {
      rows.push([
        measure.label,
        target,
        num(med[target]),
        range(values[target]?.[measure.key] ?? []),
        target === 'nginx' ? '1.00×' : ratio(med[target], med.nginx),
        target === 'direct' ? '1.00×' : ratio(med[target], med.direct),
      ]);
    }
  }
  return table(['Measure', 'Target', 'Median', 'Range over rounds', '× nginx', '× direct'], rows, 2);
}

/**
 * Table 2: proxy cost per unit of work (median over rounds) for each proxy, the
 * ratio to nginx, and Switchyard's target with pass/miss.
 */
export function costTable(costs, proxies, values) {
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
      targetText,
      proxies.includes('switchyard') ? verdict : '—',
    ]);
  }
  const others = proxies.filter((p) => p !== 'nginx');
  return table(['Proxy cost (median)', ...proxies, ...others.map((p) => `${p} ÷ nginx`), 'Switchyard target', 'Result'], rows, 1, 2);
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
