import { isAbsolute, resolve } from 'node:path';
import type { ConfigDraft, DraftRoute } from '../config-draft.js';
import type { ImportReport } from '../import-report.js';
import { sourceLabel } from '../source-location.js';
import type { Directive } from './haproxy-parser.js';
import type { Setting } from './haproxy-settings.js';

/** What the `global` section sets that proxies and listeners use. */
export interface GlobalSettings {
  maxconn: Setting<number> | undefined;
  ciphers: Setting<string> | undefined;
  /** TLSv1.3 when the bind options forbid TLS 1.2. */
  minVersion: Setting<'TLSv1.3'> | undefined;
  crtBase: string | undefined;
  caBase: string | undefined;
  /** ssl-server-verify none */
  serverVerifyNone: Directive | undefined;
  maxHeaderCount: Setting<number> | undefined;
}

export type HeaderActions = NonNullable<DraftRoute['request_headers']>;

/** Shared by the section translators. */
export interface Context {
  readonly draft: ConfigDraft;
  readonly report: ImportReport;
  /** Folder of the imported file: relative paths (certificates, -f files) are taken from here. */
  readonly baseDir: string;
  readonly global: GlobalSettings;
  /** Keys of notes already given (a note about an ACL is given once, however many rules use it). */
  readonly noted: Set<string>;
}

/** `haproxy.cfg:12 use_backend ws if is_ws`: the comment naming where a part came from. */
export function sourceComment(directive: Directive): string {
  return `${sourceLabel(directive.location)} ${directive.text}`;
}

export function comment(context: Context, part: object, directive: Directive): void {
  context.draft.comment(part, sourceComment(directive));
}

/** An absolute path for a file the config names, from `base` (crt-base, ca-base) or the config's folder. */
export function configPath(context: Context, file: string, base: string | undefined): string {
  if (isAbsolute(file)) return file;
  return resolve(context.baseDir, base ?? '.', file);
}
