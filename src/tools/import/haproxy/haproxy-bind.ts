import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { DraftListener } from '../config-draft.js';
import { listenAddress } from '../values.js';
import { configPath, type Context } from './haproxy-context.js';
import type { Directive } from './haproxy-parser.js';

/** One address of a `bind` line, as a listener to create. */
export interface Bind {
  readonly address: string;
  readonly port: number;
  readonly tls: NonNullable<DraftListener['tls']> | undefined;
  /** false: `alpn` without h2. */
  readonly http2: boolean | undefined;
  readonly maxconn: number | undefined;
  readonly directive: Directive;
}

const VALUE_OPTIONS = new Set([
  'name', 'process', 'thread', 'backlog', 'mss', 'interface', 'nice', 'level', 'severity-output', 'mode', 'user', 'group', 'uid', 'gid', 'id',
  'npn', 'curves', 'ecdhe', 'tcp-ut', 'namespace', 'proto', 'accept-netscaler-cip', 'sigalgs', 'client-sigalgs', 'tls-ticket-keys', 'ca-sign-file',
  'ca-sign-pass', 'crl-file', 'ca-ignore-err', 'crt-ignore-err', 'ca-verify-file', 'guid-prefix', 'label', 'shards', 'idle-ping', 'quic-cc-algo',
]);
const SILENT_FLAGS = new Set([
  'v4v6', 'v6only', 'transparent', 'defer-accept', 'tfo', 'no-sslv3', 'no-tlsv10', 'no-tlsv11', 'prefer-client-ciphers', 'no-tls-tickets',
  'strict-sni', 'allow-0rtt', 'no-ca-names', 'force-tlsv12', 'expose-fd', 'generate-certificates',
]);

/**
 * The listeners of a `bind` line: `*:80`, `:80`, `0.0.0.0:80` and `:::80`
 * mean every interface (`:80`); several addresses may be given with commas;
 * `ssl crt FILE` makes it a TLS listener (HAProxy's crt holds certificate
 * and key in one PEM, which Switchyard reads as both; a `FILE.key` beside it
 * is used as the key, as HAProxy does); more `crt` files become SNI
 * certificates for the names in them.
 */
export function readBind(directive: Directive, context: Context): Bind[] {
  const { report, global } = context;
  const [addresses = '', ...options] = directive.args;
  let tls = false;
  const certs: string[] = [];
  let alpn: string | undefined;
  let ciphers = global.ciphers?.value;
  let minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined = global.minVersion?.value;
  let maxconn: number | undefined;
  for (let i = 0; i < options.length; i += 1) {
    const option = options[i]!;
    const value = options[i + 1];
    const takeValue = (): string | undefined => {
      i += 1;
      return value;
    };
    switch (option) {
      case 'ssl': tls = true; break;
      case 'crt': {
        const file = takeValue();
        if (file !== undefined) certs.push(file);
        break;
      }
      case 'crt-list':
        takeValue();
        report.skip(directive.location, directive.text, 'crt-list: list the certificates as crt FILE (or under tls.certificates)');
        break;
      case 'alpn': alpn = takeValue(); break;
      case 'ciphers': ciphers = takeValue(); break;
      case 'ciphersuites':
        takeValue();
        report.skip(directive.location, directive.text, 'TLS 1.3 cipher suites are not configurable (Node\'s defaults)');
        break;
      case 'ssl-min-ver': {
        const version = takeValue();
        if (version === 'TLSv1.3') minVersion = 'TLSv1.3';
        else if (version !== 'TLSv1.2') report.advise(directive.location, directive.text, `ssl-min-ver ${version ?? ''}: Switchyard accepts TLS 1.2 at least`);
        break;
      }
      case 'ssl-max-ver':
        takeValue();
        report.skip(directive.location, directive.text, 'ssl-max-ver has no equivalent (TLS 1.2 and 1.3 are offered)');
        break;
      case 'no-tlsv12':
      case 'force-tlsv13':
        minVersion = 'TLSv1.3';
        break;
      case 'maxconn': {
        const n = Number(takeValue());
        if (Number.isInteger(n) && n > 0) maxconn = n;
        break;
      }
      case 'accept-proxy':
        report.skip(directive.location, directive.text, 'accept-proxy: set the listener\'s proxy_protocol to the addresses of the balancers that send the PROXY header');
        break;
      case 'verify':
      case 'ca-file': {
        const what = takeValue();
        if (option === 'verify' && what === 'none') break;
        report.skip(directive.location, directive.text, 'client certificates (mutual TLS) on listeners are not supported');
        break;
      }
      case 'ssl-default-bind-options':
        break;
      default:
        if (VALUE_OPTIONS.has(option)) takeValue();
        else if (!SILENT_FLAGS.has(option)) report.skip(directive.location, directive.text, `bind option ${option} is not translated`);
    }
  }
  let tlsBlock: Bind['tls'];
  if (tls) {
    tlsBlock = listenerTls(certs, directive, context);
    if (tlsBlock) {
      if (minVersion === 'TLSv1.3') tlsBlock.min_version = 'TLSv1.3';
      if (ciphers !== undefined) tlsBlock.ciphers = ciphers;
    } else return [];
  } else if (certs.length > 0) {
    report.skip(directive.location, directive.text, 'crt without ssl: HAProxy serves plain HTTP here too');
  }
  const http2 = tls && alpn !== undefined && !alpn.split(',').includes('h2') ? false : undefined;

  const binds: Bind[] = [];
  for (const address of addresses.split(',')) {
    const parsed = parseListenAddress(address);
    if ('why' in parsed) {
      report.skip(directive.location, directive.text, parsed.why);
      continue;
    }
    binds.push({ address: parsed.address, port: parsed.port, tls: tlsBlock, http2, maxconn, directive });
  }
  return binds;
}

function parseListenAddress(text: string): { address: string; port: number } | { why: string } {
  if (text.includes('${')) return { why: 'the address uses an environment variable' };
  let rest = text;
  const family = /^(ipv4|ipv6)@/.exec(rest);
  if (family) rest = rest.slice(family[0].length);
  else if (/^[a-z0-9-]+@/.test(rest) || rest.startsWith('/')) return { why: `${text}: UNIX sockets and special address families are not supported` };
  let host: string;
  let port: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(rest);
  if (bracketed) {
    host = `[${bracketed[1]!}]`;
    port = bracketed[2]!;
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) return { why: `${text}: no port` };
    host = rest.slice(0, colon);
    port = rest.slice(colon + 1);
    if (host.includes(':')) host = host === '::' ? '[::]' : `[${host}]`;
  }
  if (/^\d+-\d+$/.test(port)) return { why: `${text}: port ranges are not supported (one listener per port)` };
  const number = Number(port);
  if (!/^\d+$/.test(port) || number < 1 || number > 65535) return { why: `${text}: "${port}" is not a port` };
  return { address: listenAddress(host, number), port: number };
}

function listenerTls(certs: readonly string[], directive: Directive, context: Context): NonNullable<DraftListener['tls']> | undefined {
  const { report, global } = context;
  const files: { cert: string; key: string }[] = [];
  for (const crt of certs) {
    const file = configPath(context, crt, global.crtBase);
    let isDirectory = crt.endsWith('/');
    try {
      isDirectory = statSync(file).isDirectory();
    } catch {
      // Not readable here: kept as written, check reports it.
    }
    if (isDirectory) {
      report.skip(directive.location, directive.text, `crt ${crt} is a folder: list its certificates one by one (Switchyard needs the names each one serves, under tls.certificates)`);
      continue;
    }
    files.push({ cert: file, key: existsSync(`${file}.key`) ? `${file}.key` : file });
  }
  const [main, ...more] = files;
  if (!main) {
    report.skip(directive.location, directive.text, 'ssl without a usable crt: no TLS listener could be made');
    return undefined;
  }
  const tls: NonNullable<DraftListener['tls']> = { cert: main.cert, key: main.key };
  const certificates: { hosts: string[]; cert: string; key: string }[] = [];
  for (const entry of more) {
    const hosts = certificateNames(entry.cert);
    if (hosts.length === 0) {
      report.skip(directive.location, directive.text, `cannot read the names in ${entry.cert}: add it under tls.certificates with its hosts by hand`);
      continue;
    }
    certificates.push({ hosts, ...entry });
  }
  if (certificates.length > 0) tls.certificates = certificates;
  return tls;
}

/** DNS names of a PEM certificate (subjectAltName, else the CN); empty when unreadable. */
function certificateNames(file: string): string[] {
  try {
    const certificate = new X509Certificate(readFileSync(file));
    const names = (certificate.subjectAltName ?? '').split(/,\s*/).filter((entry) => entry.startsWith('DNS:')).map((entry) => entry.slice(4));
    if (names.length > 0) return names;
    const cn = /CN=([^\n,]+)/.exec(certificate.subject);
    return cn ? [cn[1]!.trim()] : [];
  } catch {
    return [];
  }
}
