import { dirname } from 'node:path';
import { ImportError } from '../import-error.js';
import type { ImportReport } from '../import-report.js';
import { expandInclude } from '../include-files.js';
import { readConfigFile } from '../read-config-file.js';
import type { SourceLocation } from '../source-location.js';

/** One nginx directive: `name args...;` or `name args... { block }`, with where it was written. */
export interface NginxDirective {
  readonly name: string;
  readonly args: readonly string[];
  readonly location: SourceLocation;
  readonly block: readonly NginxDirective[] | undefined;
}

interface Token {
  readonly text: string;
  /** `{`, `}` and `;` unquoted are syntax; a quoted "{" is a word. */
  readonly syntax: boolean;
  readonly location: SourceLocation;
}

/**
 * Parses an nginx config file into directives, following `include` (globs,
 * relative to the main file's folder, as nginx takes them relative to its
 * prefix). Throws ImportError with file:line:column on a syntax error or an
 * include that names a missing file.
 */
export function parseNginxFile(file: string, report: ImportReport): NginxDirective[] {
  return parseFile(file, dirname(file), report, [], undefined);
}

function parseFile(file: string, baseDir: string, report: ImportReport, stack: readonly string[], from: SourceLocation | undefined): NginxDirective[] {
  const text = readConfigFile(file, from);
  if (stack.includes(file)) throw new ImportError(from ?? { file, line: 0, column: 0 }, `${file} includes itself`);
  const tokens = tokenize(text, file);
  let index = 0;
  const parseBlock = (open: Token | undefined): NginxDirective[] => {
    const directives: NginxDirective[] = [];
    for (;;) {
      const first = tokens[index];
      if (first === undefined) {
        if (open) throw new ImportError(open.location, 'this "{" is never closed (unexpected end of file)');
        return directives;
      }
      index += 1;
      if (first.syntax && first.text === '}') {
        if (!open) throw new ImportError(first.location, 'unexpected "}"');
        return directives;
      }
      if (first.syntax) throw new ImportError(first.location, `unexpected "${first.text}"`);
      if (first.text.startsWith('<')) throw new ImportError(first.location, `"${first.text}" is not nginx syntax (an Apache config? try: switchyard import apache)`);
      const args: string[] = [];
      for (;;) {
        const token = tokens[index];
        if (token === undefined) throw new ImportError(first.location, `directive "${first.text}" has no ";" (unexpected end of file; is this an nginx config?)`);
        index += 1;
        if (!token.syntax) {
          args.push(token.text);
          continue;
        }
        if (token.text === ';') {
          directives.push(...expand({ name: first.text, args, location: first.location, block: undefined }));
          break;
        }
        if (token.text === '{') {
          directives.push({ name: first.text, args, location: first.location, block: parseBlock(token) });
          break;
        }
        throw new ImportError(first.location, `directive "${first.text}" has no ";" before "}" (line ${token.location.line})`);
      }
    }
  };
  const expand = (directive: NginxDirective): NginxDirective[] => {
    if (directive.name !== 'include') return [directive];
    const pattern = directive.args[0];
    if (pattern === undefined || directive.args.length !== 1) throw new ImportError(directive.location, 'include takes one file or pattern');
    const files = expandInclude(pattern, baseDir);
    if (files.length === 0) {
      // A glob may match nothing (nginx accepts that); a plain name must exist.
      if (/[*?[]/.test(pattern)) return [];
      if (/(^|\/)(mime\.types|fastcgi_params|fastcgi\.conf|uwsgi_params|scgi_params|koi-utf|koi-win|win-utf)$/.test(pattern)) {
        report.skip(directive.location, `include ${pattern}`, 'a file nginx ships (MIME types or FastCGI parameters), not needed by a proxy');
        return [];
      }
      throw new ImportError(directive.location, `include ${pattern}: no such file (copy it beside the config, keeping the relative path, or remove the include)`);
    }
    return files.flatMap((included) => parseFile(included, baseDir, report, [...stack, file], directive.location));
  };
  return parseBlock(undefined);
}

function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const at = (offset: number): SourceLocation => ({ file, line, column: offset - lineStart + 1 });
  while (i < text.length) {
    const char = text[i]!;
    if (char === '\n') {
      line += 1;
      i += 1;
      lineStart = i;
      continue;
    }
    if (char === ' ' || char === '\t' || char === '\r') {
      i += 1;
      continue;
    }
    if (char === '#') {
      while (i < text.length && text[i] !== '\n') i += 1;
      continue;
    }
    if (char === '{' || char === '}' || char === ';') {
      tokens.push({ text: char, syntax: true, location: at(i) });
      i += 1;
      continue;
    }
    const start = at(i);
    if (char === '"' || char === "'") {
      let value = '';
      i += 1;
      for (;;) {
        if (i >= text.length) throw new ImportError(start, `unterminated ${char === '"' ? 'double' : 'single'}-quoted string`);
        const next = text[i]!;
        if (next === char) {
          i += 1;
          break;
        }
        if (next === '\\' && i + 1 < text.length) {
          value += unescape(text[i + 1]!);
          i += 2;
          continue;
        }
        if (next === '\n') {
          line += 1;
          lineStart = i + 1;
        }
        value += next;
        i += 1;
      }
      tokens.push({ text: value, syntax: false, location: start });
      continue;
    }
    let value = '';
    while (i < text.length) {
      const next = text[i]!;
      if (next === ' ' || next === '\t' || next === '\r' || next === '\n' || next === ';' || next === '{' || next === '}') {
        // "${var}" keeps its braces; a "{" right after "$" is part of the word.
        if (next === '{' && value.endsWith('$')) {
          const close = text.indexOf('}', i);
          if (close > 0) {
            value += text.slice(i, close + 1);
            i = close + 1;
            continue;
          }
        }
        break;
      }
      if (next === '\\' && i + 1 < text.length) {
        value += unescape(text[i + 1]!);
        i += 2;
        continue;
      }
      value += next;
      i += 1;
    }
    tokens.push({ text: value, syntax: false, location: start });
  }
  return tokens;
}

/** nginx's escapes: \" \' \\ \t \r \n; any other backslash stays (regexes keep their "\."). */
function unescape(escaped: string): string {
  switch (escaped) {
    case '"': case "'": case '\\': return escaped;
    case 't': return '\t';
    case 'r': return '\r';
    case 'n': return '\n';
    default: return `\\${escaped}`;
  }
}
