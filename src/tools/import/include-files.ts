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
      for (const name of names.sort()) if (!name.startsWith('.') && matcher.test(name)) next.push(join(path, name));
    }
    paths = next;
  }
  const files: string[] = [];
  for (const path of paths) {
    let stat;
    try {
      stat = statSync(path);
    } catch {
      continue;
    }
    if (stat.isDirectory()) {
      for (const name of readdirSync(path).sort()) if (!name.startsWith('.') && statSync(join(path, name)).isFile()) files.push(join(path, name));
    } else {
      files.push(path);
    }
  }
  return files;
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
