import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, formatIssue, type ConfigIssue } from '../../config/config-error.js';
import { loadConfigText } from '../../config/load.js';
import { ProxyError } from '../../errors.js';
import { translateApache } from './apache/apache-translator.js';
import { emitYaml } from './emit-yaml.js';
import { ImportError } from './import-error.js';
import { translateHaproxy } from './haproxy/haproxy-translator.js';
import { translateNginx } from './nginx/nginx-translator.js';
import type { Translator } from './translation.js';

const TRANSLATORS: Readonly<Record<string, Translator>> = { apache: translateApache, nginx: translateNginx, haproxy: translateHaproxy };

export const IMPORT_USAGE = `Usage: switchyard import apache|nginx|haproxy FILE [-o out.yaml]

Translates an Apache (VirtualHost, ProxyPass, RewriteRule [P]), nginx (server,
location, upstream, proxy_pass) or HAProxy (frontend, backend, acl, use_backend)
config into a Switchyard config, with comments naming where each part came from.
Includes are followed. Directives that have no translation are listed with
file:line; unsafe or redundant ones (hand-copied Upgrade headers, a strict
Connection match, a 60 s read timeout on WebSocket paths) are pointed out.

Options:
  -o, --output FILE   write the config here (default: standard output)
Exit code: 0 when the result is a valid config, 1 when the input cannot be read
or the result does not pass check (it is written anyway), 2 on bad usage.`;

export function importCommand(argv: readonly string[]): number {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ProxyError('SY_USAGE', (err as Error).message.split('\n')[0]);
  }
  if (parsed.values.help) {
    console.log(IMPORT_USAGE);
    return 0;
  }
  const [format, file, ...extra] = parsed.positionals;
  if (format === undefined || file === undefined || extra.length > 0) throw new ProxyError('SY_USAGE', 'import takes a format and a file: switchyard import apache|nginx|haproxy FILE [-o out.yaml]');
  const translate = TRANSLATORS[format];
  if (!translate) throw new ProxyError('SY_USAGE', `unknown format "${format}" (apache, nginx or haproxy)`);

  let translation;
  try {
    translation = translate(file);
  } catch (err) {
    if (err instanceof ImportError) {
      console.error(`switchyard import: ${err.line} (${err.code})`);
      return 1;
    }
    throw err;
  }
  const { draft, report } = translation;
  const output = parsed.values.output;
  const header = [
    `Imported by: switchyard import ${format} ${basename(file)}`,
    `Check it with: switchyard check -c ${output ?? 'FILE'}`,
    ...(report.skipped.length + report.advice.length > 0 ? ['', ...report.describe()] : []),
  ];
  const yaml = emitYaml(draft, header);
  const problems = checkOutput(yaml, output);
  if (output === undefined) process.stdout.write(yaml);
  else writeFileSync(output, yaml);

  for (const line of report.describe()) console.error(line);
  for (const issue of problems.warnings) console.error(formatIssue(issue));
  if (problems.errors.length > 0) {
    console.error('switchyard import: the result does not pass check (fix these, then run switchyard check):');
    for (const issue of problems.errors) console.error(formatIssue(issue));
    return 1;
  }
  console.error(`switchyard import: ${draft.sites.length} site(s), ${Object.keys(draft.upstreams).length} upstream(s), ${draft.listeners.length} listener(s)${output === undefined ? '' : ` written to ${output}`}`);
  return 0;
}

/** Runs the loader (the same validation and lint as `check`) on the result. */
function checkOutput(yaml: string, output: string | undefined): { errors: readonly ConfigIssue[]; warnings: readonly ConfigIssue[] } {
  // Messages name the output file, or standard output (paths in the result are absolute).
  const file = output === undefined ? '<stdout>' : resolve(output);
  try {
    const { warnings } = loadConfigText(yaml, file, { defaultSecret: randomBytes(32).toString('base64url'), env: {} });
    return { errors: [], warnings };
  } catch (err) {
    if (err instanceof ConfigError) return { errors: err.issues, warnings: [] };
    throw err;
  }
}
