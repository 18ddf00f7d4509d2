import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ImportError } from '../import-error.js';
import type { ImportReport } from '../import-report.js';
import { expandInclude } from '../include-files.js';
import { readConfigFile } from '../read-config-file.js';
import type { SourceLocation } from '../source-location.js';
import { isKnownDirective } from './apache-directives.js';

/** One directive line: its name, its arguments (quotes removed) and where it stands. */
export interface ApacheDirective {
  readonly kind: 'directive';
  readonly name: string;
  /** The name in lower case (Apache directive names ignore case). */
  readonly lower: string;
  readonly args: readonly string[];
  /** The line as written (continuations joined), for reports and comments. */
  readonly text: string;
  readonly location: SourceLocation;
  /** The folder relative file names of this directive are taken from: ServerRoot when set, else the imported file's folder. */
  readonly root: string;
}

/** A `<Name args>` ... `</Name>` section (its opening line described as a directive's) and what it holds. */
export interface ApacheSection extends Omit<ApacheDirective, 'kind'> {
  readonly kind: 'section';
  readonly children: ApacheNode[];
}

export type ApacheNode = ApacheDirective | ApacheSection;

export interface ParsedApacheConfig {
  readonly nodes: ApacheNode[];
  /** The imported file's folder (absolute). */
  readonly mainDir: string;
}

interface ParseState {
  readonly report: ImportReport;
  readonly mainFile: string;
  readonly mainDir: string;
  /** Absolute paths of the files being read (include loops). */
  readonly stack: string[];
  readonly defines: Map<string, string>;
  serverRoot: string | undefined;
}

/**
 * Reads an Apache httpd config the way httpd does before any module sees it:
 * continuation lines joined, comments dropped, arguments split with quotes,
 * sections nested, Include/IncludeOptional followed (globs; relative to
 * ServerRoot when set, else the imported file's folder, else the including
 * file's folder), Define and ${NAME}
 * substituted, <IfDefine> decided. Everything else is left to the translator.
 */
export function parseApacheConfig(file: string, report: ImportReport): ParsedApacheConfig {
  const absolute = resolve(file);
  const state: ParseState = { report, mainFile: file, mainDir: dirname(absolute), stack: [], defines: new Map(), serverRoot: undefined };
  const text = readConfigFile(file);
  const nodes = parseText(text, absolute, file, state);
  return { nodes, mainDir: state.mainDir };
}

interface LogicalLine {
  readonly text: string;
  readonly line: number;
  readonly column: number;
}

/** Physical lines → logical lines: a trailing backslash continues a line; blank and # lines are dropped. */
export function logicalLines(text: string): LogicalLine[] {
  const physical = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const out: LogicalLine[] = [];
  for (let i = 0; i < physical.length; i += 1) {
    const startLine = i + 1;
    let joined = physical[i]!;
    while (/\\\s*$/.test(joined) && i + 1 < physical.length) {
      joined = joined.replace(/\\\s*$/, '');
      i += 1;
      joined += physical[i]!;
    }
    joined = joined.replace(/\\\s*$/, '');
    const trimmed = joined.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    out.push({ text: trimmed, line: startLine, column: joined.length - joined.trimStart().length + 1 });
  }
  return out;
}

/**
 * Arguments as ap_getword_conf splits them: whitespace separates words; a word
 * that starts with " or ' runs to the matching quote, in which \" (or \') and
 * \\ stand for the character.
 */
export function splitArgs(text: string): string[] {
  return splitArgsAndComment(text).args;
}

/**
 * The arguments, and the rest of the line from an unquoted word that starts
 * with # (Apache has no comments after a directive: it reads such words as
 * arguments, and most directives then refuse them).
 */
export function splitArgsAndComment(text: string): { args: string[]; comment: string | undefined } {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i += 1;
    if (i >= text.length) break;
    const quote = text[i];
    if (quote === '#' && words.length > 0) return { args: words, comment: text.slice(i) };
    let word = '';
    if (quote === '"' || quote === "'") {
      i += 1;
      while (i < text.length && text[i] !== quote) {
        if (text[i] === '\\' && (text[i + 1] === quote || text[i + 1] === '\\')) {
          word += text[i + 1];
          i += 2;
        } else {
          word += text[i];
          i += 1;
        }
      }
      i += 1;
    } else {
      while (i < text.length && !/\s/.test(text[i]!)) {
        word += text[i];
        i += 1;
      }
    }
    words.push(word);
  }
  return { args: words, comment: undefined };
}

type LineShape = 'apache' | 'foreign' | 'unknown';

const FOREIGN_SECTIONS = new Set(['global', 'defaults', 'frontend', 'backend', 'resolvers', 'peers', 'userlist', 'mailers', 'http', 'events', 'stream', 'upstream']);

/** What a line looks like: Apache, clearly another format (nginx braces and semicolons, YAML or JSON keys, HAProxy sections), or an unknown word. */
function lineShape(text: string): { shape: LineShape; why: string } {
  if (/^[{}[\]]/.test(text) || /^-\s/.test(text)) return { shape: 'foreign', why: 'JSON or YAML syntax' };
  if (/(^|\s)\{$/.test(text) || /^\}/.test(text) || /;$/.test(text)) return { shape: 'foreign', why: 'nginx syntax (a block or a statement ending in ";")' };
  const first = text.split(/\s+/, 1)[0]!;
  if (/^"?[^"\s]*"?:$/.test(first) || /^[\w.-]+:(\s|$)/.test(text)) return { shape: 'foreign', why: 'YAML or JSON syntax (a "key:")' };
  if (/^\[[^\]]*\]$/.test(text)) return { shape: 'foreign', why: 'INI syntax' };
  if (text.startsWith('<')) {
    return /^<\/?[A-Za-z][\w:.-]*(\s[^>]*)?>$/.test(text) ? { shape: 'apache', why: '' } : { shape: 'foreign', why: 'not an Apache <Section> line' };
  }
  if (FOREIGN_SECTIONS.has(first.toLowerCase()) && !isKnownDirective(first)) return { shape: 'foreign', why: `"${first}" starts a section in HAProxy or nginx` };
  if (/^[A-Za-z][A-Za-z0-9_]*$/.test(first) && isKnownDirective(first)) return { shape: 'apache', why: '' };
  return { shape: 'unknown', why: '' };
}

/** A file whose first directive is foreign, or that has no Apache line at all, is not an Apache config. */
function checkLooksLikeApache(lines: readonly LogicalLine[], display: string): void {
  if (lines.length === 0) return;
  const shapes = lines.map((line) => ({ line, ...lineShape(line.text) }));
  const firstForeign = shapes.find((entry) => entry.shape === 'foreign');
  const anyApache = shapes.some((entry) => entry.shape === 'apache');
  const first = shapes[0]!;
  if (first.shape === 'foreign' || !anyApache) {
    const offending = first.shape === 'foreign' ? first : firstForeign ?? first;
    const why = offending.why === '' ? 'no directive Apache httpd knows' : offending.why;
    throw new ImportError({ file: display, line: offending.line.line, column: offending.line.column }, `not an Apache config: ${JSON.stringify(shorten(offending.line.text))} (${why})`);
  }
}

function shorten(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

interface OpenSection {
  readonly section: ApacheSection;
  /** Where children go: the section, or a throwaway list for a false <IfDefine>. */
  readonly into: ApacheNode[];
  /** Inside a false <IfDefine>: nothing is read, not even Define or Include. */
  readonly skipped: boolean;
}

function parseText(text: string, absolute: string, display: string, state: ParseState): ApacheNode[] {
  if (state.stack.includes(absolute)) {
    throw new ImportError({ file: display, line: 1, column: 1 }, `include loop: ${[...state.stack, absolute].map((path) => displayPath(path, state)).join(' -> ')}`);
  }
  state.stack.push(absolute);
  const lines = logicalLines(text);
  checkLooksLikeApache(lines, display);
  const top: ApacheNode[] = [];
  const open: OpenSection[] = [];
  const current = (): ApacheNode[] => (open.length === 0 ? top : open[open.length - 1]!.into);
  for (const line of lines) {
    const location: SourceLocation = { file: display, line: line.line, column: line.column };
    const substituted = substituteDefines(line.text, state);
    if (substituted.startsWith('</')) {
      const name = /^<\/\s*([^\s>]+)\s*>$/.exec(substituted)?.[1];
      const last = open.pop();
      if (name === undefined) throw new ImportError(location, `malformed section end ${JSON.stringify(substituted)}`);
      if (!last) throw new ImportError(location, `</${name}> without a matching <${name}>`);
      if (last.section.lower !== name.toLowerCase()) {
        throw new ImportError(location, `</${name}> closes <${last.section.name}> opened at line ${last.section.location.line}`);
      }
      continue;
    }
    if (substituted.startsWith('<')) {
      const match = /^<([A-Za-z][\w:.-]*)(?:\s+([\s\S]*?))?\s*>$/.exec(substituted);
      if (!match) throw new ImportError(location, `section line without its closing ">": ${JSON.stringify(shorten(substituted))}`);
      const name = match[1]!;
      const section: ApacheSection = {
        kind: 'section', name, lower: name.toLowerCase(), args: splitArgs(match[2] ?? ''), text: substituted, location, root: rootOf(state), children: [],
      };
      const outerSkipped = open.length > 0 && open[open.length - 1]!.skipped;
      // <IfDefine> is decided while reading, as httpd does: a false one keeps nothing.
      if (section.lower === 'ifdefine' && !outerSkipped && !ifDefineHolds(section.args[0] ?? '', state)) {
        state.report.skip(location, substituted, `${section.args[0] ?? ''} is ${section.args[0]?.startsWith('!') ? 'defined' : 'not defined'} here (Define, or httpd -D): its contents are not translated`);
        open.push({ section, into: [], skipped: true });
        continue;
      }
      current().push(section);
      open.push({ section, into: section.children, skipped: outerSkipped });
      continue;
    }
    const { args, comment } = splitArgsAndComment(substituted);
    const name = args.shift() ?? '';
    const lower = name.toLowerCase();
    if (open.length > 0 && open[open.length - 1]!.skipped) continue;
    if (comment !== undefined) {
      state.report.skip(location, substituted, `${JSON.stringify(shorten(comment))} is left out: Apache has no comments after a directive (it reads these words as arguments, which most directives refuse)`);
    }
    if (lower === 'define') {
      if (args[0] !== undefined) state.defines.set(args[0], args[1] ?? '');
      continue;
    }
    if (lower === 'undefine') {
      if (args[0] !== undefined) state.defines.delete(args[0]);
      continue;
    }
    if (lower === 'serverroot' && args[0] !== undefined) {
      state.serverRoot = isAbsolute(args[0]) ? args[0] : resolve(state.mainDir, args[0]);
    }
    if (lower === 'include' || lower === 'includeoptional') {
      const pattern = args[0];
      if (pattern === undefined) throw new ImportError(location, `${name} needs a file or pattern`);
      // httpd takes relative names from ServerRoot, usually the main file's folder (a copy elsewhere has it there too); failing that, the including file's.
      const bases = [...new Set([state.serverRoot, state.mainDir, dirname(absolute)].filter((dir): dir is string => dir !== undefined))];
      const base = bases[0]!;
      let files: string[] = [];
      for (const dir of isAbsolute(pattern) ? [base] : bases) {
        files = expandInclude(pattern, dir);
        if (files.length > 0) break;
      }
      if (files.length === 0) {
        if (lower === 'include') throw new ImportError(location, `Include ${pattern}: no file matches (looked in ${isAbsolute(pattern) ? dirname(pattern) : base}; use IncludeOptional if that is fine)`);
        state.report.skip(location, substituted, 'IncludeOptional: no file matches; nothing read');
        continue;
      }
      for (const included of files) {
        const includedText = readConfigFile(included, location);
        current().push(...parseText(includedText, included, displayPath(included, state), state));
      }
      continue;
    }
    current().push({ kind: 'directive', name, lower, args, text: substituted, location, root: rootOf(state) });
  }
  const unclosed = open.pop();
  if (unclosed) throw new ImportError(unclosed.section.location, `<${unclosed.section.name}> is not closed in this file (</${unclosed.section.name}> missing)`);
  state.stack.pop();
  return top;
}

function rootOf(state: ParseState): string {
  return state.serverRoot ?? state.mainDir;
}

/** An included file as reports name it: beside the imported file's name as given. */
function displayPath(absolute: string, state: ParseState): string {
  const rel = relative(state.mainDir, absolute);
  if (rel.startsWith('..') || isAbsolute(rel)) return absolute;
  return join(dirname(state.mainFile), rel);
}

/** `${NAME}` of a Define is replaced; others stay as written (httpd also looks in its environment, which is not this one). */
function substituteDefines(text: string, state: ParseState): string {
  if (!text.includes('${')) return text;
  return text.replace(/\$\{([A-Za-z_][\w.]*)\}/g, (whole, name: string) => state.defines.get(name) ?? whole);
}

function ifDefineHolds(argument: string, state: ParseState): boolean {
  const negated = argument.startsWith('!');
  const name = negated ? argument.slice(1) : argument;
  return state.defines.has(name) !== negated;
}
