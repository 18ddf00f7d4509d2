import { readFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, parse as parseYaml, visit, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { ConfigError, didYouMean, formatPath, type ConfigIssue } from './config-error.js';
import type { SwitchyardConfig } from './model.js';
import { ConfigFileSchema, type ConfigFile } from './schema.js';
import { toModel } from './to-model.js';
import { knownKeysAt } from './schema-keys.js';

export interface LoadOptions {
  /** Environment for ${VAR} and ${VAR:-default}; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Sticky secret when neither the file nor SWITCHYARD_SECRET gives one. */
  readonly defaultSecret: string;
}

export interface LoadResult {
  readonly config: SwitchyardConfig;
  readonly warnings: readonly ConfigIssue[];
}

/** Where a path of the document is in the file, for messages. */
export type Locate = (path: readonly PropertyKey[]) => { line: number; column: number };

/**
 * Reads, interpolates and validates a config file into the runtime model.
 * Throws ConfigError with every problem found, each with file, line, column and
 * path; returns the warnings (lint) with the config.
 */
export function loadConfigFile(file: string, options: LoadOptions): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([{ severity: 'error', file, line: 0, column: 0, path: '', message: `cannot read the config file (${code === 'ENOENT' ? 'no such file' : (code ?? String(err))})` }]);
  }
  return loadConfigText(text, file, options);
}

export function loadConfigText(text: string, file: string, options: LoadOptions): LoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: ConfigIssue[] = [];
  const at = (offset: number): { line: number; column: number } => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  for (const error of doc.errors) {
    if (error.code === 'DUPLICATE_KEY') {
      const key = keyAt(doc, error.pos[0]);
      if (key) {
        issues.push({ severity: 'error', file, ...at(error.pos[0]), path: formatPath(key.path), message: `duplicate key "${key.name}" (each key may appear once)` });
        continue;
      }
    }
    issues.push({ severity: 'error', file, ...at(error.pos[0]), path: '', message: `YAML: ${error.message.split('\n')[0]}` });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const locate: Locate = (path) => at(nodeAt(doc, path)?.range?.[0] ?? 0);

  interpolateEnv(doc, options.env ?? process.env, (node, path, message) => {
    issues.push({ severity: 'error', file, ...at(node.range?.[0] ?? 0), path: formatPath(path), message });
  });
  if (issues.length > 0) throw new ConfigError(issues);

  visit(doc, {
    Alias(_key, alias) {
      if (alias.resolve(doc) === undefined) issues.push({ severity: 'error', file, ...at(alias.range?.[0] ?? 0), path: '', message: `YAML: unknown alias *${alias.source} (define the anchor &${alias.source} before using it)` });
    },
  });
  if (issues.length > 0) throw new ConfigError(issues);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 }) ?? {};
  } catch (err) {
    throw new ConfigError([{ severity: 'error', file, line: 0, column: 0, path: '', message: `YAML: ${(err as Error).message}` }]);
  }
  // Two passes: the structure first (every schema error at once), then, on a
  // well-formed file, references, URLs, templates and route order.
  const parsed = ConfigFileSchema.safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) issues.push(...describeZodIssue(issue, doc, data, file, at));
    throw new ConfigError(dedupe(issues));
  }
  const result = toModel(parsed.data as ConfigFile, { file, locate, env: options.env ?? process.env, defaultSecret: options.defaultSecret });
  const errors = result.issues.filter((issue) => issue.severity === 'error');
  if (errors.length > 0) throw new ConfigError(result.issues);
  return { config: { ...result.config, file }, warnings: result.issues.filter((issue) => issue.severity === 'warning') };
}

/** The YAML node at a document path, or the deepest existing ancestor. */
function nodeAt(doc: Document, path: readonly PropertyKey[]): YamlNode | undefined {
  for (let length = path.length; length >= 0; length--) {
    const node = doc.getIn(path.slice(0, length) as unknown[], true) as YamlNode | undefined;
    if (node && typeof node === 'object' && 'range' in node) return node;
  }
  return undefined;
}

/**
 * Environment references are upper-case (${PORT}, ${API_URL:-http://...}), which
 * leaves the lower-case and numeric ${path}, ${1} to route templates.
 */
const ENV_REFERENCE = /\$\$\{|\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * ${VAR} and ${VAR:-default} in string values; $${ is a literal ${. A missing VAR
 * without default is an error. An unquoted value that is only a reference takes
 * the type its text has (`workers: ${WORKERS:-2}` is the number 2).
 */
function interpolateEnv(doc: Document, env: NodeJS.ProcessEnv, report: (node: YamlNode, path: PropertyKey[], message: string) => void): void {
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const source = node.value;
      const value = source.replace(ENV_REFERENCE, (whole: string, name: string | undefined, fallback: string | undefined) => {
        if (whole === '$${') return '${';
        const found = env[name as string];
        if (found !== undefined && found !== '') return found;
        if (fallback !== undefined) return fallback;
        report(node, pathOf(ancestors, node), `environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
        return '';
      });
      const whole = ENV_REFERENCE.exec(source);
      ENV_REFERENCE.lastIndex = 0;
      const onlyReference = whole !== null && whole[0] === source && whole[0] !== '$${';
      const typed = onlyReference && node.type === 'PLAIN' ? (parseYaml(value) as unknown) : value;
      node.value = typeof typed === 'number' || typeof typed === 'boolean' ? typed : value;
    },
  });
}

/** The document path of a node from the ancestors `visit` passes. */
function pathOf(ancestors: readonly unknown[], node: unknown): PropertyKey[] {
  const chain = [...ancestors, node];
  const path: PropertyKey[] = [];
  for (let i = 0; i + 1 < chain.length; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) path.push(parent.items.indexOf(child as never));
    else if (isPair(parent) && child === parent.value) path.push(String(isScalar(parent.key) ? parent.key.value : parent.key));
  }
  return path;
}

/** The key whose node starts at `offset`, with its document path (for duplicate keys). */
function keyAt(doc: Document, offset: number): { name: string; path: PropertyKey[] } | undefined {
  let found: { name: string; path: PropertyKey[] } | undefined;
  visit(doc, {
    Pair(_key, pair, ancestors) {
      if (found || !isScalar(pair.key) || pair.key.range?.[0] !== offset) return;
      const name = String(pair.key.value);
      found = { name, path: [...pathOf(ancestors.slice(0, -1), ancestors[ancestors.length - 1]), name] };
      return visit.BREAK;
    },
  });
  return found;
}

function describeZodIssue(issue: z.core.$ZodIssue, doc: Document, data: unknown, file: string, at: (offset: number) => { line: number; column: number }): ConfigIssue[] {
  const path = issue.path as PropertyKey[];
  const found = valueAt(data, path);
  if (issue.code === 'invalid_union' && isPlainObject(found)) {
    // A mapping that fits no branch: when some key is unknown to every branch,
    // that key is the mistake ("presnt" in a header condition).
    const unknown = unknownToEveryBranch(issue);
    if (unknown.length > 0) return describeZodIssue({ code: 'unrecognized_keys', keys: unknown, path, message: '', input: found }, doc, data, file, at);
  }
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(ConfigFileSchema, path);
    const parent = doc.getIn(path as unknown[], true);
    return issue.keys.map((key) => {
      const pair = isMap(parent) ? parent.items.find((item) => isScalar(item.key) && item.key.value === key) : undefined;
      const keyNode = pair?.key as YamlNode | undefined;
      const suggestion = didYouMean(key, known);
      return {
        severity: 'error' as const, file, ...at(keyNode?.range?.[0] ?? nodeAt(doc, path)?.range?.[0] ?? 0),
        path: formatPath([...path, key]),
        message: `unknown key "${key}"${suggestion ? ` (did you mean "${suggestion}"?)` : known.length > 0 ? ` (expected one of: ${known.join(', ')})` : ''}`,
      };
    });
  }
  const node = nodeAt(doc, path);
  return [{ severity: 'error', file, ...at(node?.range?.[0] ?? 0), path: formatPath(path), message: zodMessage(issue, found) }];
}

function unknownToEveryBranch(issue: z.core.$ZodIssueInvalidUnion): string[] {
  let common: Set<string> | undefined;
  for (const branch of issue.errors) {
    const keys = branch.filter((inner) => inner.code === 'unrecognized_keys' && inner.path.length === 0).flatMap((inner) => (inner as z.core.$ZodIssueUnrecognizedKeys).keys);
    if (keys.length === 0) {
      // An object branch that knows every key given: not an unknown-key mistake.
      if (branch.some((inner) => inner.code !== 'invalid_type' || inner.path.length > 0)) return [];
      continue;
    }
    common = common === undefined ? new Set(keys) : new Set(keys.filter((key) => common!.has(key)));
  }
  return common ? [...common] : [];
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let value = data;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function zodMessage(issue: z.core.$ZodIssue, found: unknown): string {
  const shown = found === undefined ? 'nothing' : describeValue(found);
  switch (issue.code) {
    case 'invalid_type':
      return found === undefined ? `required: expected ${typeName(issue.expected)}` : `expected ${typeName(issue.expected)}, found ${shown}`;
    case 'invalid_union':
      return `expected ${unionExpectation(issue)}, found ${shown}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((value) => JSON.stringify(value)).join(', ')}, found ${shown}`;
    case 'too_small':
      return issue.origin === 'array' ? `expected at least ${issue.minimum} item${issue.minimum === 1 ? '' : 's'}` : `expected at least ${issue.minimum}, found ${shown}`;
    case 'too_big':
      return `expected at most ${issue.maximum}, found ${shown}`;
    case 'invalid_key':
      return `${issue.issues[0]?.message ?? 'invalid key'}, found ${JSON.stringify(issue.path[issue.path.length - 1])}`;
    default:
      return `${issue.message}${found === undefined || typeof found === 'object' ? '' : `, found ${shown}`}`;
  }
}

function unionExpectation(issue: z.core.$ZodIssueInvalidUnion): string {
  const expected = new Set<string>();
  for (const branch of issue.errors) {
    const first = branch[0];
    if (!first) continue;
    if (first.code === 'invalid_type') expected.add(first.path.length === 0 ? typeName(first.expected) : 'a mapping');
    else if (first.code === 'invalid_value') expected.add(first.values.map((value) => JSON.stringify(value)).join(' | '));
    else if (first.code === 'unrecognized_keys') expected.add('a mapping');
    else expected.add(first.message);
  }
  return [...expected].join(' or ');
}

function typeName(expected: string): string {
  return expected === 'object' ? 'a mapping' : expected === 'array' ? 'a list' : `a ${expected}`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.line}:${issue.column}:${issue.path}:${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
