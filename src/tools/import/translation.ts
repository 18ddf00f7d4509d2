import type { ConfigDraft } from './config-draft.js';
import type { ImportReport } from './import-report.js';

/** What a translator gives back: the config and the notes about what did not carry over. */
export interface Translation {
  readonly draft: ConfigDraft;
  readonly report: ImportReport;
}

/**
 * Reads `file` (and what it includes) and translates it. Throws ImportError
 * (file:line:column) when the input is not that format or an include cannot
 * be followed.
 */
export type Translator = (file: string) => Translation;
