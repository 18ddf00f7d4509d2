import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
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
    issues.push({ severity: 'error', file, ...at(error.pos[0]), path: '', message: `YAML: ${error.message.split('\n')[0]}` });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const locate: Locate = (path) => at(nodeAt(doc, path)?.range?.[0] ?? 0);

  interpolateEnv(doc, options.env ?? process.env, (node, message) => {
    issues.push({ severity: 'error', file, ...at(node.range?.[0] ?? 0), path: '', message });
  });
  if (issues.length > 0) throw new ConfigError(issues);

  const parsed = ConfigFileSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    for (const issue of parsed.error.issues) issues.push(...describeZodIssue(issue, doc, file, at));
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

/** ${VAR} and ${VAR:-default} in string values; $${ is a literal ${. A missing VAR without default is an error. */
function interpolateEnv(doc: Document, env: NodeJS.ProcessEnv, report: (node: YamlNode, message: string) => void): void {
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      node.value = node.value.replace(ENV_REFERENCE, (whole: string, name: string | undefined, fallback: string | undefined) => {
        if (whole === '$${') return '${';
        const value = env[name as string];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        report(node, `environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
        return '';
      });
    },
  });
}

function describeZodIssue(issue: z.core.$ZodIssue, doc: Document, file: string, at: (offset: number) => { line: number; column: number }): ConfigIssue[] {
  const path = issue.path as PropertyKey[];
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
  const found = doc.getIn(path as unknown[]);
  return [{ severity: 'error', file, ...at(node?.range?.[0] ?? 0), path: formatPath(path), message: zodMessage(issue, found) }];
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
