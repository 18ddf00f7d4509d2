import { ConfigDraft } from '../config-draft.js';
import { ImportError } from '../import-error.js';
import { ImportReport } from '../import-report.js';
import type { Translation } from '../translation.js';

export function translateApache(file: string): Translation {
  void ConfigDraft;
  void ImportReport;
  throw new ImportError({ file, line: 0, column: 0 }, 'not written yet');
}
