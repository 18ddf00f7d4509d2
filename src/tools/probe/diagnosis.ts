import type { ClientForm } from './client-forms.js';
import type { SessionResult } from './probe-session.js';

/** One client form's result with its verdict in plain words. */
export interface VariantReport {
  readonly form: ClientForm;
  readonly result: SessionResult;
  /** false: the variant does not apply to this server (HTTP/2 not spoken or WebSockets not offered over it); not a failure. */
  readonly applicable: boolean;
  /** Passed, or not applicable. */
  readonly ok: boolean;
  readonly diagnosis: string;
}

/** What one failed (or passed, or not applicable) handshake says, on its own. */
export function diagnose(result: SessionResult, hostname: string): { ok: boolean; applicable: boolean; diagnosis: string } {
  if (result.notApplicable !== undefined) return { ok: true, applicable: false, diagnosis: result.notApplicable };
  return { applicable: true, ...verdict(result, hostname) };
}

function verdict(result: SessionResult, hostname: string): { ok: boolean; diagnosis: string } {
  const error = result.error;
  if (error) {
    switch (error.stage) {
      case 'dns':
        return { ok: false, diagnosis: `the name ${hostname} does not resolve (${error.code})` };
      case 'tcp':
        if (error.code === 'ECONNREFUSED') return { ok: false, diagnosis: 'nothing listens on that host and port (connection refused)' };
        if (error.code === 'ETIMEDOUT') return { ok: false, diagnosis: 'no TCP connection: the host is down or a firewall drops the packets' };
        return { ok: false, diagnosis: `no TCP connection (${error.code}: ${error.message})` };
      case 'tls':
        return { ok: false, diagnosis: tlsDiagnosis(error.code, error.message, hostname) };
      default:
        if (error.code === 'RST_STREAM') return { ok: false, diagnosis: resetDiagnosis(result.resetCode ?? '?') };
        if (error.code === 'GOAWAY') return { ok: false, diagnosis: `the server ended the HTTP/2 connection before answering the extended CONNECT (${error.message})` };
        if (error.code === 'ESETTINGS') return { ok: false, diagnosis: `the server chose HTTP/2 in ALPN but sent no SETTINGS: ${error.message}` };
        if (error.code === 'ECLOSED') return { ok: false, diagnosis: 'a hop closed the connection without answering the handshake' };
        if (error.code === 'ETIMEDOUT') return { ok: false, diagnosis: 'no answer to the handshake: a hop holds the request (or buffers it) without answering' };
        return { ok: false, diagnosis: `${error.code}: ${error.message}` };
    }
  }
  const status = result.status ?? 0;
  if (result.transport === 'h2') {
    if (status === 200) return upgradedVerdict(result, 'upgraded over HTTP/2', 'stream');
    if (status === 421) return { ok: false, diagnosis: 'the hop refuses WebSockets over HTTP/2 for this name (421): clients retry over HTTP/1.1' };
    if (status >= 200 && status < 300) return { ok: false, diagnosis: `a hop answered ${status} to the extended CONNECT instead of 200` };
    if (status === 400 || status === 405 || status === 501) {
      return { ok: false, diagnosis: `${status} ${result.statusText ?? ''}: a hop does not take the extended CONNECT (:protocol websocket) although SETTINGS_ENABLE_CONNECT_PROTOCOL was offered` };
    }
  } else if (status === 101) {
    if (!result.acceptValid) return { ok: false, diagnosis: 'a hop answered 101 with a wrong Sec-WebSocket-Accept (it made up its own handshake or altered the key)' };
    return upgradedVerdict(result, 'upgraded', 'connection');
  }
  if (status >= 200 && status < 300) {
    return { ok: false, diagnosis: `a hop answered ${status}: it treated the upgrade as plain HTTP (Upgrade/Connection were dropped on the way; nginx needs proxy_http_version 1.1 and proxy_set_header Upgrade/Connection, Apache mod_proxy_wstunnel or upgrade=websocket)` };
  }
  if (status === 426) {
    const wanted = result.responseHeaders?.['sec-websocket-version'];
    // Without a version, 426 is a WebSocket-only backend answering a plain GET: the upgrade was lost on the way.
    if (wanted === undefined) return { ok: false, diagnosis: '426 Upgrade Required without Sec-WebSocket-Version: the backend saw a plain HTTP request, so a hop dropped Upgrade/Connection on the way (a strict Connection match, or headers not passed on)' };
    return { ok: false, diagnosis: `426 Upgrade Required: the server wants another WebSocket version (it sent Sec-WebSocket-Version: ${wanted})` };
  }
  if (status === 400 && result.responseHeaders?.['sec-websocket-version'] !== undefined) {
    return { ok: false, diagnosis: `400 with Sec-WebSocket-Version: ${result.responseHeaders['sec-websocket-version']}: the server refuses this WebSocket version` };
  }
  if (status === 502) return { ok: false, diagnosis: '502: a hop could not reach its backend (backend down, wrong port, or it closed the connection)' };
  if (status === 503) return { ok: false, diagnosis: '503: a hop has no backend available (all down, draining or full), or could not connect to it (HAProxy and Apache answer 503 for a refused connection: check the backend address and port)' };
  if (status === 504) return { ok: false, diagnosis: '504: a hop timed out waiting for its backend\'s answer' };
  if (status === 403) return { ok: false, diagnosis: '403: refused by access control or an Origin policy (try --origin)' };
  if (status === 401) return { ok: false, diagnosis: '401: the path needs authentication (try --header "Authorization: ...")' };
  if (status === 404) return { ok: false, diagnosis: '404: no hop has a route for this path' };
  if (status === 421) return { ok: false, diagnosis: '421: the host name is not served here (or WebSockets over HTTP/2 are off for it)' };
  if (status >= 300 && status < 400) return { ok: false, diagnosis: `${status}: redirected to ${result.responseHeaders?.location ?? '?'} (WebSocket clients do not follow redirects)` };
  return { ok: false, diagnosis: `${status} ${result.statusText ?? ''}`.trim() };
}

function upgradedVerdict(result: SessionResult, upgraded: string, carrier: string): { ok: boolean; diagnosis: string } {
  if (result.closedEarly) return { ok: false, diagnosis: `${upgraded}, then the ${carrier} closed before the messages came back` };
  if (result.echo === 'echoed') return { ok: true, diagnosis: `${upgraded}; text and binary messages echoed${result.closeCode !== undefined ? `, clean close (${result.closeCode})` : ', no close reply'}` };
  if (result.echo === 'frames') return { ok: true, diagnosis: `${upgraded}; the peer sent frames (it does not echo)` };
  return { ok: true, diagnosis: `${upgraded}; no frame came back within the wait (the peer does not echo)` };
}

/** An RST_STREAM on the extended CONNECT before any answer, by its error code's name. */
function resetDiagnosis(name: string): string {
  switch (name) {
    case 'REFUSED_STREAM':
      return 'the server refused the stream (RST_STREAM REFUSED_STREAM) without processing the extended CONNECT: it is at its stream limit or will not take it';
    case 'HTTP_1_1_REQUIRED':
      return 'a hop reset the stream with HTTP_1_1_REQUIRED: it wants this WebSocket over HTTP/1.1 (clients retry over HTTP/1.1)';
    case 'CONNECT_ERROR':
      return 'a hop could not open its connection onward (RST_STREAM CONNECT_ERROR): its backend is down or refused';
    case 'PROTOCOL_ERROR':
      return 'a hop reset the stream with PROTOCOL_ERROR: it took the extended CONNECT as malformed (it offered SETTINGS_ENABLE_CONNECT_PROTOCOL but does not handle :protocol)';
    default:
      return `a hop reset the stream with ${name} before answering the extended CONNECT`;
  }
}

function tlsDiagnosis(code: string, message: string, hostname: string): string {
  switch (code) {
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `certificate not valid for ${hostname}`;
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return 'the certificate is self-signed (use --ca FILE to trust it, or --insecure)';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return 'the certificate chain does not lead to a trusted CA (an intermediate is missing, or use --ca FILE)';
    case 'CERT_HAS_EXPIRED':
      return 'the certificate has expired';
    default:
      return `TLS failed (${code}: ${message})`;
  }
}

/**
 * What the variants say together: a failure only some client forms meet is a
 * hop that matches headers too strictly.
 */
export function compareVariants(reports: readonly VariantReport[]): string | undefined {
  const applicable = reports.filter((report) => report.applicable);
  const failed = applicable.filter((report) => !report.ok);
  const passed = applicable.filter((report) => report.ok);
  if (failed.length === 0 || passed.length === 0) return undefined;
  if (failed.every((report) => report.form.transport === 'h2')) {
    return 'only http2 failed: WebSockets over HTTP/2 (RFC 8441) fail on this path while HTTP/1.1 works; browsers that open them over HTTP/2 when the server offers it (Chromium, Firefox) meet this failure';
  }
  if (passed.every((report) => report.form.transport === 'h2')) {
    return 'every HTTP/1.1 form failed while http2 passed: some hop breaks the HTTP/1.1 Upgrade (clients that do not use HTTP/2 for WebSockets fail)';
  }
  const names = failed.map((report) => report.form.name);
  if (names.includes('keep-alive-upgrade') && failed.every((report) => /keep-alive|firefox/.test(report.form.name))) {
    return `only ${names.join(', ')} failed (${failed[0]!.result.status ?? failed[0]!.result.error?.code}): some hop matches the Connection header strictly (e.g. Apache RewriteCond %{HTTP:Connection} ^Upgrade$); match the "upgrade" token in a list, case-insensitively`;
  }
  if (names.length === 1 && names[0] === 'minimal') {
    return 'only the minimal form failed: some hop wants headers browsers send (an Origin check, or Upgrade matched case-sensitively)';
  }
  return `${names.join(', ')} failed while ${passed.map((report) => report.form.name).join(', ')} passed: some hop treats these header forms differently`;
}
