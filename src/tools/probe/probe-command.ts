import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../config/duration.js';
import { ProxyError } from '../../errors.js';
import { CLIENT_FORMS, HTTP2_FORM, type ClientForm } from './client-forms.js';
import { compareVariants, diagnose, type VariantReport } from './diagnosis.js';
import { probeHttp2Session } from './http2-session.js';
import { holdIdle, probeSession, probeTarget, type ProbeOptions, type ProbeTarget, type SessionResult } from './probe-session.js';

export const PROBE_USAGE = `Usage: switchyard probe URL [options]

Opens a WebSocket to URL (ws, wss, http, https: any server or chain of
proxies) once per client header form (${CLIENT_FORMS.map((form) => form.name).join(', ')}),
sends a text and a binary message, closes, and says in plain words what failed.
For wss/https URLs one more variant, ${HTTP2_FORM.name}, does the same over HTTP/2
extended CONNECT (RFC 8441); it is skipped (not failed) when the server does not
speak HTTP/2 or does not offer WebSockets over it.

Options:
  --form NAME            only this variant (repeatable; ${HTTP2_FORM.name} needs wss/https)
  --no-http2             leave out the ${HTTP2_FORM.name} variant
  --origin ORIGIN        Origin to send (default: the URL's own)
  --protocol NAME        ask for this subprotocol (repeatable)
  --header "Name: value" extra request header (repeatable)
  --ca FILE              trust this CA (PEM) for wss/https
  --cert FILE --key FILE client certificate (mTLS)
  --insecure             do not verify the server certificate
  --timeout D            connect and handshake timeout (default 5s)
  --echo-wait D          how long to wait for the echo (default 2s)
  --idle D               then hold one idle connection up to D to find the path's idle cut-off
  --json                 machine-readable output
Exit code: 0 when every variant passed or was skipped (and the idle test, if asked,
held), 1 otherwise, 2 on bad usage.`;

interface ProbeReport {
  url: string;
  ok: boolean;
  variants: { form: string; transport: 'http/1.1' | 'h2'; applicable: boolean; ok: boolean; status?: number; alpn?: string; diagnosis: string; timings: Record<string, number | undefined>; subprotocol?: string; extensions?: string; echo?: string; closeCode?: number; error?: string }[];
  comparison?: string;
  idle?: { heldMs: number; endedAfterMs?: number; diagnosis: string };
}

export async function probeCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseProbeArgs(argv);
  if (values.help) {
    console.log(PROBE_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new ProxyError('SY_USAGE', 'probe takes one URL (try: switchyard probe --help)');
  let target: ProbeTarget;
  try {
    target = probeTarget(positionals[0]!);
  } catch (err) {
    throw new ProxyError('SY_USAGE', (err as Error).message);
  }
  const forms = selectForms(values.form ?? [], target, values['no-http2'] ?? false);
  const options: ProbeOptions = {
    ...(values.origin !== undefined ? { origin: values.origin } : {}),
    subprotocols: values.protocol ?? [],
    headers: (values.header ?? []).map(parseHeader),
    tls: {
      rejectUnauthorized: !values.insecure,
      ...(values.ca !== undefined ? { ca: readOption(values.ca, '--ca') } : {}),
      ...(values.cert !== undefined ? { cert: readOption(values.cert, '--cert') } : {}),
      ...(values.key !== undefined ? { key: readOption(values.key, '--key') } : {}),
    },
    timeoutMs: durationOption(values.timeout, '--timeout', 5_000),
    echoMs: durationOption(values['echo-wait'], '--echo-wait', 2_000),
  };
  const idleMs = values.idle === undefined ? undefined : durationOption(values.idle, '--idle', 0);
  const json = values.json ?? false;
  if (!json) console.log(`probe ${target.url.href}`);

  const reports: VariantReport[] = [];
  for (const form of forms) {
    const result = await probeVariant(target, form, options);
    const verdict = diagnose(result, target.host);
    const report = { form, result, ...verdict };
    reports.push(report);
    if (!json) console.log(formatVariant(report));
  }
  const comparison = compareVariants(reports);
  if (comparison && !json) console.log(`  diagnosis: ${comparison}`);

  let idle: ProbeReport['idle'];
  if (idleMs !== undefined) idle = await idleTest(target, reports, options, idleMs, json);

  const ok = reports.every((report) => report.ok) && (idle === undefined || idle.endedAfterMs === undefined);
  if (json) {
    const out: ProbeReport = {
      url: target.url.href,
      ok,
      variants: reports.map(({ form, result, applicable, ok: passed, diagnosis }) => ({
        form: form.name, transport: form.transport, applicable, ok: passed, diagnosis, timings: { ...result.timings },
        ...(result.status !== undefined ? { status: result.status } : {}),
        ...(result.alpn !== undefined ? { alpn: result.alpn } : {}),
        ...(result.subprotocol !== undefined ? { subprotocol: result.subprotocol } : {}),
        ...(result.extensions !== undefined ? { extensions: result.extensions } : {}),
        ...(result.echo !== undefined ? { echo: result.echo } : {}),
        ...(result.closeCode !== undefined ? { closeCode: result.closeCode } : {}),
        ...(result.error ? { error: `${result.error.code}: ${result.error.message}` } : {}),
      })),
      ...(comparison ? { comparison } : {}),
      ...(idle ? { idle } : {}),
    };
    console.log(JSON.stringify(out, null, 2));
  }
  return ok ? 0 : 1;
}

async function idleTest(target: ProbeTarget, reports: readonly VariantReport[], options: ProbeOptions, idleMs: number, json: boolean): Promise<NonNullable<ProbeReport['idle']>> {
  const form = reports.find((report) => report.ok && report.applicable)?.form;
  if (!form) return { heldMs: 0, diagnosis: 'no form upgraded: nothing to hold idle' };
  const session = await probeVariant(target, form, options, true);
  if (!session.stream) return { heldMs: 0, diagnosis: 'the idle connection did not upgrade' };
  if (!json) process.stderr.write(`  idle: holding one ${form.name} connection up to ${seconds(idleMs)} `);
  let shown = 0;
  const { endedAfterMs } = await holdIdle(session.stream, idleMs, (elapsed) => {
    // A dot per second of silence, a figure every 10 s: progress without a flood.
    const whole = Math.floor(elapsed / 1000);
    if (json || whole <= shown) return;
    shown = whole;
    process.stderr.write(whole % 10 === 0 ? `${whole}s` : '.');
  });
  if (!json) process.stderr.write('\n');
  const diagnosis = endedAfterMs === undefined
    ? `still open after ${seconds(idleMs)} idle`
    : `connection closed after ${seconds(endedAfterMs)} idle: a hop's idle timeout (nginx proxy_read_timeout, HAProxy timeout tunnel, a load balancer's idle timeout)`;
  if (!json) console.log(`  idle: ${diagnosis}`);
  return { heldMs: idleMs, ...(endedAfterMs !== undefined ? { endedAfterMs } : {}), diagnosis };
}

function formatVariant(report: VariantReport): string {
  const { timings, status } = report.result;
  const parts = [
    timings.dnsMs !== undefined ? `dns ${timings.dnsMs}ms` : '',
    timings.tcpMs !== undefined ? `tcp ${timings.tcpMs}ms` : '',
    timings.tlsMs !== undefined ? `tls ${timings.tlsMs}ms` : '',
    timings.handshakeMs !== undefined ? `handshake ${timings.handshakeMs}ms` : '',
    timings.echoMs !== undefined ? `echo ${timings.echoMs}ms` : '',
  ].filter((part) => part !== '').join(' ');
  const negotiated = [report.result.subprotocol ? `protocol ${report.result.subprotocol}` : '', report.result.extensions ? `extensions ${report.result.extensions}` : ''].filter((part) => part !== '').join(', ');
  const verdict = !report.applicable ? 'SKIP' : report.ok ? 'PASS' : 'FAIL';
  const diagnosis = status === undefined ? report.diagnosis : report.diagnosis.replace(new RegExp(`^${status}:? `), '');
  return `  ${report.form.name.padEnd(19)} ${verdict} ${String(status ?? '---').padEnd(4)}${diagnosis}\n  ${''.padEnd(19)} ${parts}${negotiated ? `  (${negotiated})` : ''}`;
}

function parseProbeArgs(argv: readonly string[]): ReturnType<typeof parseArgsWithOptions> {
  try {
    return parseArgsWithOptions(argv);
  } catch (err) {
    throw new ProxyError('SY_USAGE', (err as Error).message);
  }
}

function parseArgsWithOptions(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      json: { type: 'boolean' },
      insecure: { type: 'boolean' },
      'no-http2': { type: 'boolean' },
      form: { type: 'string', multiple: true },
      origin: { type: 'string' },
      protocol: { type: 'string', multiple: true },
      header: { type: 'string', multiple: true },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      timeout: { type: 'string' },
      'echo-wait': { type: 'string' },
      idle: { type: 'string' },
    },
  });
}

/** One variant's session: over HTTP/1.1, or over HTTP/2 for the http2 form. */
function probeVariant(target: ProbeTarget, form: ClientForm, options: ProbeOptions, keepOpen = false): Promise<SessionResult> {
  return form.transport === 'h2' ? probeHttp2Session(target, form, options, keepOpen) : probeSession(target, form, options, keepOpen);
}

/**
 * The variants to run: the --form ones in their order, else every HTTP/1.1
 * form and, for wss/https URLs without --no-http2, the http2 one last.
 */
function selectForms(names: readonly string[], target: ProbeTarget, noHttp2: boolean): ClientForm[] {
  const all = [...CLIENT_FORMS, HTTP2_FORM];
  if (names.length === 0) return target.secure && !noHttp2 ? all : [...CLIENT_FORMS];
  return names.map((name) => {
    const form = all.find((candidate) => candidate.name === name);
    if (!form) throw new ProxyError('SY_USAGE', `--form ${name}: expected one of ${all.map((candidate) => candidate.name).join(', ')}`);
    if (form.transport === 'h2' && !target.secure) throw new ProxyError('SY_USAGE', `--form ${name}: WebSockets over HTTP/2 need a wss or https URL (browsers speak HTTP/2 only over TLS)`);
    if (form.transport === 'h2' && noHttp2) throw new ProxyError('SY_USAGE', `--form ${name} and --no-http2 contradict each other`);
    return form;
  });
}

function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ProxyError('SY_USAGE', `--header "${text}": expected "Name: value"`);
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()];
}

function durationOption(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined) throw new ProxyError('SY_USAGE', `${flag} ${text}: expected a duration such as 500ms, 5s or 2m`);
  return ms;
}

function readOption(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ProxyError('SY_USAGE', `${flag} ${file}: ${(err as Error).message}`);
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}
