import { ProxyError } from '../../errors.js';
import { formatLocation, type SourceLocation } from './source-location.js';

/**
 * The input is not a config of the named format, or cannot be read whole (an
 * include that cannot be followed): one line with file, line and column.
 */
export class ImportError extends ProxyError {
  readonly location: SourceLocation;
  /** `file:line:column: what is wrong`, as the CLI prints it. */
  readonly line: string;

  constructor(location: SourceLocation, message: string) {
    super('SY_IMPORT_INVALID', `${formatLocation(location)}: ${message}`);
    this.location = location;
    this.line = `${formatLocation(location)}: ${message}`;
  }
}
