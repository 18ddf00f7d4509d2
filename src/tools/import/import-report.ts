import { formatLocation, type SourceLocation } from './source-location.js';

export interface ImportNote {
  readonly location: SourceLocation;
  /** The directive as written, shortened to one line. */
  readonly directive: string;
  readonly message: string;
}

/**
 * What a translation could not carry over (`skipped`) and what it carried over
 * but wants the user to look at: settings that are unsafe, or redundant in
 * Switchyard (`advice`).
 */
export class ImportReport {
  readonly skipped: ImportNote[] = [];
  readonly advice: ImportNote[] = [];

  skip(location: SourceLocation, directive: string, message: string): void {
    add(this.skipped, { location, directive: oneLine(directive), message });
  }

  advise(location: SourceLocation, directive: string, message: string): void {
    add(this.advice, { location, directive: oneLine(directive), message });
  }

  /** Lines for the terminal and for the head of the generated file. */
  describe(): string[] {
    const lines: string[] = [];
    if (this.skipped.length > 0) {
      lines.push(`Not translated (${this.skipped.length}):`);
      for (const note of sorted(this.skipped)) lines.push(`  ${formatLocation(note.location)}: ${note.directive}: ${note.message}`);
    }
    if (this.advice.length > 0) {
      lines.push(`Look at (${this.advice.length}):`);
      for (const note of sorted(this.advice)) lines.push(`  ${formatLocation(note.location)}: ${note.directive}: ${note.message}`);
    }
    return lines;
  }
}

/** A directive inherited by several routes is noted once. */
function add(notes: ImportNote[], note: ImportNote): void {
  const same = notes.some((other) => other.message === note.message && other.directive === note.directive
    && other.location.file === note.location.file && other.location.line === note.location.line && other.location.column === note.location.column);
  if (!same) notes.push(note);
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 100 ? `${flat.slice(0, 97)}...` : flat;
}

function sorted(notes: readonly ImportNote[]): ImportNote[] {
  return [...notes].sort((a, b) => a.location.file.localeCompare(b.location.file) || a.location.line - b.location.line || a.location.column - b.location.column);
}
