import { readFileSync } from 'node:fs';
import { ImportError } from './import-error.js';
import type { SourceLocation } from './source-location.js';

/** Why a file could not be read, in a few words: "no such file", "permission denied", "a folder, not a file", else the errno code. */
export function describeReadError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'a folder, not a file';
  return code ?? String(err);
}

/**
 * Reads a config file to import, whole. When it cannot be read, the
 * ImportError stands at the line that included it (`cannot read FILE (why)`),
 * or, for the imported file itself, at FILE:0:0 with just the reason (the
 * location already names the file).
 */
export function readConfigFile(file: string, includedAt?: SourceLocation): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const why = describeReadError(err);
    if (includedAt) throw new ImportError(includedAt, `cannot read ${file} (${why})`);
    throw new ImportError({ file, line: 0, column: 0 }, why);
  }
}
