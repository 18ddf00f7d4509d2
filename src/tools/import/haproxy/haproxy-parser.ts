import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImportError } from '../import-error.js';
import { describeReadError, readConfigFile } from '../read-config-file.js';
import type { SourceLocation } from '../source-location.js';

/**
 * HAProxy's configuration language, read the way haproxy 2.x reads it: one
 * directive per line, words split on blanks, `#` starts a comment outside
 * quotes, `\` escapes the next character (`\ `, `\#`, `\"`, `\\`, `\t`,
 * `\xNN`), "..." groups words and keeps backslash escapes, '...' is literal.
 * Environment variables (`"${NAME}"`) are left as written and flagged, since
 * their values are not known here. Sections start with a section keyword at
 * any indentation; every other line belongs to the section above it.
 */

export interface Word {
  /** The word after quotes and escapes are resolved. */
  readonly text: string;
  /** 1-based column of the word's first character. */
  readonly column: number;
  /** Names of `${NAME}` environment variables in a double-quoted part (not expanded). */
  readonly env: readonly string[];
}

export interface Directive {
  /** First word, as written (HAProxy keywords are case-sensitive). */
  readonly keyword: string;
  /** Every word after the keyword. */
  readonly args: readonly string[];
  readonly words: readonly Word[];
  readonly location: SourceLocation;
  /** The line without its comment, trimmed: for notes and YAML comments. */
  readonly text: string;
}

export type SectionKind = 'global' | 'defaults' | 'frontend' | 'backend' | 'listen' | 'other';

export interface Section {
  readonly kind: SectionKind;
  /** The section keyword as written (resolvers, peers, userlist, ...). */
  readonly keyword: string;
  readonly name: string | undefined;
  /** The header line. */
  readonly header: Directive;
  readonly directives: Directive[];
}

export interface HaproxyConfig {
  /** The files read, in order (a folder gives its *.cfg files sorted, as `haproxy -f DIR` does). */
  readonly files: readonly string[];
  readonly sections: readonly Section[];
}

const PROXY_SECTIONS: Readonly<Record<string, SectionKind>> = {
  global: 'global', defaults: 'defaults', frontend: 'frontend', backend: 'backend', listen: 'listen',
};

/** Section keywords haproxy knows besides the proxies; their content is not translated. */
export const OTHER_SECTIONS: ReadonlySet<string> = new Set([
  'resolvers', 'peers', 'userlist', 'cache', 'program', 'http-errors', 'mailers', 'ring', 'log-forward',
  'fcgi-app', 'crt-store', 'traces', 'acme', 'namespace_list', 'backend-defaults',
]);

/** Reads FILE (or the *.cfg files of a folder) and splits it into sections. */
export function readHaproxyConfig(path: string): HaproxyConfig {
  const files = configFiles(path);
  const sections: Section[] = [];
  for (const file of files) sections.push(...parseSections(readConfigFile(file), file));
  if (sections.length === 0) {
    throw new ImportError({ file: files[0] ?? path, line: 1, column: 1 }, 'not an HAProxy config: no section (global, defaults, frontend, backend, listen) in it');
  }
  return { files, sections };
}

function configFiles(path: string): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch (err) {
    throw new ImportError({ file: path, line: 0, column: 0 }, `cannot read the file (${describeReadError(err)})`);
  }
  if (!stat.isDirectory()) return [path];
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (err) {
    throw new ImportError({ file: path, line: 0, column: 0 }, `cannot read the folder (${describeReadError(err)})`);
  }
  const files = names.filter((name) => name.endsWith('.cfg') && !name.startsWith('.')).sort().map((name) => join(path, name));
  if (files.length === 0) throw new ImportError({ file: path, line: 0, column: 0 }, 'the folder has no *.cfg file (haproxy -f DIR reads those)');
  return files;
}

/** Splits one file into sections; a directive before the first section means the file is not HAProxy's. */
export function parseSections(text: string, file: string): Section[] {
  const sections: Section[] = [];
  let current: Section | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = index + 1;
    const words = splitWords(raw, file, line);
    if (words.length === 0) return;
    const first = words[0]!;
    const directive: Directive = {
      keyword: first.text,
      args: words.slice(1).map((word) => word.text),
      words,
      location: { file, line, column: first.column },
      text: stripComment(raw).trim(),
    };
    const kind = PROXY_SECTIONS[first.text] ?? (OTHER_SECTIONS.has(first.text) ? 'other' : undefined);
    if (kind !== undefined) {
      const name = directive.args[0];
      if ((kind === 'frontend' || kind === 'backend' || kind === 'listen') && name === undefined) {
        throw new ImportError(directive.location, `"${first.text}" needs a name`);
      }
      current = { kind, keyword: first.text, name: kind === 'global' ? undefined : name, header: directive, directives: [] };
      sections.push(current);
      return;
    }
    if (!current) {
      throw new ImportError(directive.location, `not an HAProxy config: "${shorten(directive.text)}" comes before any section (global, defaults, frontend, backend, listen)`);
    }
    current.directives.push(directive);
  });
  return sections;
}

function shorten(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The line up to its first unquoted, unescaped `#`. */
function stripComment(raw: string): string {
  let quote: string | undefined;
  for (let i = 0; i < raw.length; i += 1) {
    const char = raw[i]!;
    if (quote === "'") {
      if (char === "'") quote = undefined;
      continue;
    }
    if (char === '\\') {
      i += 1;
      continue;
    }
    if (quote === '"') {
      if (char === '"') quote = undefined;
      continue;
    }
    if (char === '"' || char === "'") quote = char;
    else if (char === '#') return raw.slice(0, i);
  }
  return raw;
}

const ESCAPES: Readonly<Record<string, string>> = { t: '\t', n: '\n', r: '\r' };

/** The words of one line (none for blank and comment lines). */
export function splitWords(raw: string, file: string, line: number): Word[] {
  const words: Word[] = [];
  let i = 0;
  while (i < raw.length) {
    while (i < raw.length && (raw[i] === ' ' || raw[i] === '\t')) i += 1;
    if (i >= raw.length || raw[i] === '#') break;
    const column = i + 1;
    let text = '';
    const env: string[] = [];
    let quote: '"' | "'" | undefined;
    for (; i < raw.length; i += 1) {
      const char = raw[i]!;
      if (quote === "'") {
        if (char === "'") quote = undefined;
        else text += char;
        continue;
      }
      if (char === '\\') {
        const next = raw[i + 1];
        if (next === undefined) break;
        if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(raw.slice(i + 2, i + 4))) {
          text += String.fromCharCode(parseInt(raw.slice(i + 2, i + 4), 16));
          i += 3;
        } else {
          text += ESCAPES[next] ?? next;
          i += 1;
        }
        continue;
      }
      if (quote === '"') {
        if (char === '"') quote = undefined;
        else {
          if (char === '$' && raw[i + 1] === '{') {
            const end = raw.indexOf('}', i);
            if (end > i) env.push(raw.slice(i + 2, end).replace(/[-:].*$/, ''));
          }
          text += char;
        }
        continue;
      }
      if (char === ' ' || char === '\t') break;
      if (char === '#') break;
      if (char === '"' || char === "'") {
        quote = char;
        continue;
      }
      text += char;
    }
    if (quote !== undefined) {
      throw new ImportError({ file, line, column }, `unterminated ${quote === '"' ? 'double' : 'single'} quote`);
    }
    words.push({ text, column, env });
    if (raw[i] === '#') break;
  }
  return words;
}
