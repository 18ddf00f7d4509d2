import assert from 'node:assert/strict';
import { spawnSwitchyard, withTimeout } from './cli.js';

/** One handshake form in `switchyard probe --json` output. */
export interface ProbeVariant {
  form: string;
  transport: string;
  applicable: boolean;
  ok: boolean;
  status?: number;
  alpn?: string;
  diagnosis: string;
  timings: Record<string, number>;
  subprotocol?: string;
  echo?: string;
  closeCode?: number;
  error?: string;
}

/** What `switchyard probe --json` prints. */
export interface ProbeJson {
  ok: boolean;
  variants: ProbeVariant[];
  comparison?: string;
  idle?: { heldMs: number; endedAfterMs?: number; diagnosis: string };
}

export interface ProbeResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The parsed output, when the arguments asked for --json and stdout is JSON. */
  json?: ProbeJson;
}

/** Runs `switchyard probe ARGS` (the real CLI) and waits up to `ms` for it to exit. */
export async function probe(args: readonly string[], ms = 20_000): Promise<ProbeResult> {
  const cli = spawnSwitchyard(['probe', ...args]);
  const { code } = await withTimeout(cli.exited, ms, `probe ${args.join(' ')}`);
  const json = args.includes('--json') && cli.stdout.trim().startsWith('{') ? JSON.parse(cli.stdout) as ProbeJson : undefined;
  return { code, stdout: cli.stdout, stderr: cli.stderr, ...(json ? { json } : {}) };
}

/** probe() with --json added; asserts that stdout is JSON. */
export async function probeJson(args: readonly string[], ms = 20_000): Promise<ProbeResult & { json: ProbeJson }> {
  const result = await probe([...args, '--json'], ms);
  assert.ok(result.json, `no JSON on stdout: ${result.stdout} ${result.stderr}`);
  return { ...result, json: result.json };
}
