import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, formatIssue } from '../config/config-error.js';
import { loadConfigFile } from '../config/load.js';
import { configJsonSchema } from '../config/schema.js';
import { runDemo } from '../demo/run-demo.js';
import { ProxyError } from '../errors.js';
import { describeStart, runProxy } from '../server/run.js';

const DEFAULT_FILE = 'switchyard.yaml';

export const RUN_USAGE = `Usage: switchyard run [-c FILE] [--watch]

Runs the proxy from a config file (default ./${DEFAULT_FILE}; without one, the embedded demo).
  -c, --config FILE   the config file
  --watch             reload when the file changes (SIGHUP reloads too)`;

export const CHECK_USAGE = `Usage: switchyard check [-c FILE]

Validates and lints a config file: every problem with file, line and column. Exit 0 when usable, 1 when not.`;

function parseConfigArgs(argv: readonly string[], allowWatch: boolean): { file: string | undefined; watch: boolean; help: boolean } {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: { config: { type: 'string', short: 'c' }, watch: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
    if (values.watch && !allowWatch) throw new Error("Unknown option '--watch'");
    return { file: values.config, watch: values.watch ?? false, help: values.help ?? false };
  } catch (err) {
    throw new ProxyError('SY_USAGE', (err as Error).message.split('\n')[0]);
  }
}

/** A per-process default sticky secret; workers inherit the primary's through SWITCHYARD_SECRET. */
const defaultSecret = process.env.SWITCHYARD_SECRET ?? randomBytes(32).toString('base64url');

function load(file: string): ReturnType<typeof loadConfigFile> {
  return loadConfigFile(file, { defaultSecret });
}

export async function runCommand(argv: readonly string[]): Promise<number> {
  const args = parseConfigArgs(argv, true);
  if (args.help) {
    console.log(RUN_USAGE);
    return 0;
  }
  const file = args.file ?? DEFAULT_FILE;
  if (args.file === undefined && !existsSync(file)) {
    console.error(`switchyard: no ./${DEFAULT_FILE}; serving the embedded demo (see switchyard run --help)`);
    return runDemo([]);
  }
  let loaded: ReturnType<typeof load>;
  try {
    loaded = load(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) console.error(formatIssue(issue));
      return 1;
    }
    throw err;
  }
  for (const warning of loaded.warnings) console.error(formatIssue(warning));
  return runProxy(loaded.config, {
    onListening: (addresses) => console.log(describeStart(addresses, loaded.config)),
    reload: { load: () => load(file), file, watch: args.watch },
  });
}

export function checkCommand(argv: readonly string[]): number {
  const args = parseConfigArgs(argv, false);
  if (args.help) {
    console.log(CHECK_USAGE);
    return 0;
  }
  const file = args.file ?? DEFAULT_FILE;
  try {
    const { config, warnings } = load(file);
    for (const warning of warnings) console.log(formatIssue(warning));
    const routes = config.sites.reduce((count, site) => count + site.routes.length, 0);
    console.log(`${file}: ok (${config.listeners.length} listener${config.listeners.length === 1 ? '' : 's'}, ${config.sites.length} site${config.sites.length === 1 ? '' : 's'}, ${routes} route${routes === 1 ? '' : 's'}, ${config.upstreams.size} upstream${config.upstreams.size === 1 ? '' : 's'}${warnings.length ? `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : ''})`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) console.log(formatIssue(issue));
      return 1;
    }
    throw err;
  }
}

export function schemaCommand(): number {
  console.log(JSON.stringify(configJsonSchema(), null, 2));
  return 0;
}
