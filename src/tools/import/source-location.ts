import { basename } from 'node:path';

/** Where a directive of an imported config is: for error messages and the untranslated list. */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export function formatLocation(location: SourceLocation): string {
  return `${location.file}:${location.line}:${location.column}`;
}

/** `file:line` with the file's base name: how comments in the generated YAML name a directive of the imported config. */
export function sourceLabel(location: Pick<SourceLocation, 'file' | 'line'>): string {
  return `${basename(location.file)}:${location.line}`;
}
