import { ProxyError } from '../errors.js';

export interface ConfigIssue {
  readonly severity: 'error' | 'warning';
  readonly file: string;
  /** 1-based; 0 when the issue has no place in the file. */
  readonly line: number;
  readonly column: number;
  /** Where in the document, e.g. "sites[0].routes[2].to" ('' for the whole file). */
  readonly path: string;
  readonly message: string;
}

/** "file:line:column: path: message", the one-line form every issue is printed in. */
export function formatIssue(issue: ConfigIssue): string {
  const place = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  const prefix = issue.severity === 'warning' ? 'warning: ' : '';
  return `${place}: ${prefix}${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

/** A config that cannot be used; `issues` holds every error (and warning) found. */
export class ConfigError extends ProxyError {
  constructor(readonly issues: readonly ConfigIssue[]) {
    const errors = issues.filter((issue) => issue.severity === 'error');
    super('SY_CONFIG_INVALID', errors.map(formatIssue).join('\n'));
  }
}

/** The Levenshtein-closest candidate, if close enough to be a likely typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** "sites", 0, "routes", 2, "to" → "sites[0].routes[2].to" */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}
