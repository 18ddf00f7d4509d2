import { readFileSync } from 'node:fs';
import { ProxyError } from '../errors.js';
import { describeStart, runProxy } from '../server/run.js';
import { runDemo } from '../demo/run-demo.js';
import { checkCommand, runCommand, schemaCommand } from './config-commands.js';
import { parseQuickArgs, QUICK_USAGE } from './quick-args.js';
import { probeCommand } from '../tools/probe/probe-command.js';
import { importCommand } from '../tools/import/import-command.js';

const USAGE = `Usage: switchyard <command> [options]

Commands:
  run       run from a config file (default ./switchyard.yaml; without one, the demo)
  check     validate and lint a config file
  schema    print the JSON Schema of the config file
  proxy     forward a listener to backends (quick mode); see: switchyard proxy --help
  probe     test a WebSocket path (any server or proxy chain) with real clients' header forms
  import    translate an Apache, nginx or HAProxy config into a Switchyard config
  demo      run the embedded demo: a chat origin behind the proxy on 127.0.0.1:8080 (PORT to change)
  version   print the version

switchyard <command> --help shows a command's options.`;

/** Runs the CLI; resolves with the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'proxy':
        return await proxyCommand(rest);
      case 'run':
        return await runCommand(rest);
      case 'probe':
        return await probeCommand(rest);
      case 'import':
        return importCommand(rest);
      case 'check':
        return checkCommand(rest);
      case 'schema':
        return schemaCommand();
      case 'demo':
        return await runDemo(rest);
      case 'version':
      case '--version':
      case '-v':
        console.log(packageVersion());
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        console.error(`switchyard: unknown command "${command}" (try: switchyard --help)`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ProxyError && (err.code === 'SY_USAGE' || err.code === 'SY_CONFIG_INVALID')) {
      console.error(`switchyard: ${err.message.replace(/^[^:]+: /, '')}`);
      return 2;
    }
    // Start-up failures (port in use, unreadable certificate) get one line, no stack.
    const code = (err as NodeJS.ErrnoException).code;
    console.error(`switchyard: ${(err as Error).message ?? String(err)}${code ? ` (${code})` : ''}`);
    return 1;
  }
}

async function proxyCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseQuickArgs(argv);
  if (parsed.help) {
    console.log(QUICK_USAGE);
    return 0;
  }
  const { config } = parsed;
  return runProxy(config, { onListening: (addresses) => console.log(describeStart(addresses, config)) });
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
