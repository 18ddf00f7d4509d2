import type { ImportReport } from '../import-report.js';
import type { HeaderActions } from './haproxy-context.js';
import type { Directive } from './haproxy-parser.js';

/**
 * Header edits (`http-request set-header|add-header|del-header`, the same for
 * `http-response`, and the old `reqadd`/`rspadd`) collected in the order
 * written, then stated as Switchyard's remove / set / add, which it applies
 * in that order.
 */
export class HeaderEdits {
  private readonly set = new Map<string, { name: string; value: string }>();
  private readonly add = new Map<string, { name: string; value: string }>();
  private readonly remove = new Map<string, string>();

  /** Applies one edit; false when it cannot be stated (a second add of the same header). */
  apply(kind: 'set' | 'add' | 'del', name: string, value: string): boolean {
    const key = name.toLowerCase();
    if (kind === 'del') {
      this.set.delete(key);
      this.add.delete(key);
      this.remove.set(key, name);
    } else if (kind === 'set') {
      this.add.delete(key);
      this.set.set(key, { name, value });
    } else {
      if (this.add.has(key)) return false;
      this.add.set(key, { name, value });
    }
    return true;
  }

  merged(after: HeaderEdits): HeaderEdits {
    const result = new HeaderEdits();
    for (const source of [this, after]) {
      for (const name of source.remove.values()) result.apply('del', name, '');
      for (const { name, value } of source.set.values()) result.apply('set', name, value);
      for (const { name, value } of source.add.values()) result.apply('add', name, value);
    }
    return result;
  }

  toDraft(): HeaderActions | undefined {
    if (this.set.size + this.add.size + this.remove.size === 0) return undefined;
    const actions: HeaderActions = {};
    if (this.remove.size > 0) actions.remove = [...this.remove.values()];
    if (this.set.size > 0) actions.set = Object.fromEntries([...this.set.values()].map(({ name, value }) => [name, value]));
    if (this.add.size > 0) actions.add = Object.fromEntries([...this.add.values()].map(({ name, value }) => [name, value]));
    return actions;
  }
}

const HOP_BY_HOP = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'proxy-connection', 'content-length']);
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-ssl', 'x-forwarded-scheme', 'x-real-ip', 'forwarded']);

/**
 * A header edit's value as a constant: HAProxy values are log-format
 * strings, where `%%` is a percent sign and any other `%` starts a sample
 * (%[src], %ci, ...). Undefined when it has one.
 */
export function constantValue(value: string): string | undefined {
  if (/%(?!%)/.test(value.replace(/%%/g, ''))) return undefined;
  return value.replace(/%%/g, '%');
}

export interface HeaderEdit {
  readonly kind: 'set' | 'add' | 'del';
  readonly name: string;
  readonly value: string;
}

/**
 * Reads `set-header NAME VALUE`, `add-header NAME VALUE`, `del-header NAME`
 * (words after http-request/http-response, without the condition). Notes go
 * to the report; undefined when the edit is not carried over.
 */
export function readHeaderEdit(directive: Directive, action: string, words: readonly string[], conditional: boolean, direction: 'request' | 'response', report: ImportReport): HeaderEdit | undefined {
  const kind = action === 'set-header' ? 'set' : action === 'add-header' ? 'add' : 'del';
  const name = words[0];
  const rawValue = words.slice(1).join(' ');
  if (name === undefined || (kind !== 'del' && words.length < 2)) {
    report.skip(directive.location, directive.text, `${action} needs a header name${kind === 'del' ? '' : ' and a value'}`);
    return undefined;
  }
  const key = name.toLowerCase();
  if (direction === 'request' && (key === 'upgrade' || key === 'connection')) {
    report.advise(directive.location, directive.text, `redundant: hand-copied hop-by-hop header; Switchyard passes Upgrade and Connection of a WebSocket handshake on by itself (and strips them from other requests)`);
    return undefined;
  }
  if (HOP_BY_HOP.has(key)) {
    report.skip(directive.location, directive.text, `${name} is a hop-by-hop or framing header, which Switchyard manages itself`);
    return undefined;
  }
  if (direction === 'request' && FORWARDED.has(key)) {
    report.advise(directive.location, directive.text, 'redundant: Switchyard adds X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Port to every request (X-Real-IP: use X-Forwarded-For)');
    return undefined;
  }
  if (conditional) {
    report.skip(directive.location, directive.text, 'a header edit under a condition: Switchyard\'s header edits apply to every request of a route');
    return undefined;
  }
  const value = constantValue(rawValue);
  if (value === undefined) {
    report.skip(directive.location, directive.text, 'the value uses samples or log-format variables (%[...], %ci, ...); Switchyard header values are constants');
    return undefined;
  }
  return { kind, name, value };
}
