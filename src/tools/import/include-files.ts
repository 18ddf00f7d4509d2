import { readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve, sep } from 'node:path';

/**
 * The files an include pattern names, sorted as nginx and Apache read them:
 * `*`, `?` and `[...]` are expanded in any path segment; a pattern that names
 * a folder (Apache) includes every file in it. Relative patterns are taken
 * from `baseDir`. An empty list means nothing matched.
 */
export function expandInclude(pattern: string, baseDir: string): string[] {
  const absolute = isAbsolute(pattern) ? pattern : resolve(baseDir, pattern);
  const segments = absolute.split(sep);
  let paths = [segments[0] === '' ? sep : segments[0]!];
  /** Names a folder listing gave: one that cannot be stat'ed is a broken link, not a missing file. */
  const listed = new Set<string>();
  for (const segment of segments.slice(1)) {
    if (segment === '') continue;
    const next: string[] = [];
    for (const path of paths) {
      if (!/[*?[]/.test(segment)) {
        next.push(join(path, segment));
        continue;
      }
      const matcher = globSegment(segment);
      let names: string[];
      try {
        names = readdirSync(path);
      } catch {
        continue;
      }
      for (const name of names.sort()) {
        if (!name.startsWith('.') && matcher.test(name)) {
          next.push(join(path, name));
          listed.add(join(path, name));
        }
      }
    }
    paths = next;
  }
  // A name that cannot be stat'ed (a broken link, as sites-enabled/ often has)
  // is still returned: reading it then fails at the include line, with the reason.
  const files: string[] = [];
  for (const path of paths) {
    const kind = kindOf(path);
    if (kind === 'missing' && listed.has(path)) files.push(path);
    else if (kind === 'directory') {
      for (const name of listFolder(path)) if (!name.startsWith('.') && kindOf(join(path, name)) !== 'directory') files.push(join(path, name));
    } else if (kind === 'file') files.push(path);
  }
  return files;
}

/** A folder's names, sorted; an unreadable folder gives none (its include then matches nothing). */
function listFolder(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

function kindOf(path: string): 'file' | 'directory' | 'missing' {
  try {
    return statSync(path).isDirectory() ? 'directory' : 'file';
  } catch {
    return 'missing';
  }
}

function globSegment(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i += 1) {
    const char = segment[i]!;
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) source += '\\[';
      else {
        source += `[${segment.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else source += char.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}
