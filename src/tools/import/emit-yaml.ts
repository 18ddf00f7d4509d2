import { Document, Pair, Scalar, YAMLMap, YAMLSeq, type Node as YamlNode } from 'yaml';
import type { ConfigDraft } from './config-draft.js';

/**
 * The draft as YAML: the header lines as the file's opening comment, each
 * draft comment above the part it describes, short maps and lists of scalars
 * on one line.
 */
export function emitYaml(draft: ConfigDraft, header: readonly string[]): string {
  const doc = new Document();
  doc.contents = toNode(draft.toConfig(), draft) as YAMLMap;
  doc.commentBefore = header.map((line) => (line === '' ? '' : ` ${line}`)).join('\n');
  const text = doc.toString({ lineWidth: 0, flowCollectionPadding: true });
  return text.endsWith('\n') ? text : `${text}\n`;
}

function toNode(value: unknown, draft: ConfigDraft): YamlNode {
  if (Array.isArray(value)) {
    const seq = new YAMLSeq();
    for (const item of value) seq.items.push(toNode(item, draft));
    seq.flow = value.every(isScalar) && value.length <= 8;
    attachComment(seq, value, draft);
    return seq;
  }
  if (value !== null && typeof value === 'object') {
    const map = new YAMLMap();
    const entries = Object.entries(value).filter(([, item]) => item !== undefined);
    for (const [key, item] of entries) {
      const keyNode = new Scalar(key);
      const valueNode = toNode(item, draft);
      // A comment on a map or list value reads best above its key.
      if (!isScalar(item) && valueNode.commentBefore) {
        keyNode.commentBefore = valueNode.commentBefore;
        valueNode.commentBefore = undefined;
      }
      map.items.push(new Pair(keyNode, valueNode));
    }
    map.flow = entries.length <= 3 && entries.every(([, item]) => isScalar(item) || (Array.isArray(item) && item.every(isScalar) && item.length <= 3))
      && draft.commentsOf(value).length === 0 && entries.length > 0;
    attachComment(map, value, draft);
    return map;
  }
  return new Scalar(value);
}

function attachComment(node: YamlNode, value: object, draft: ConfigDraft): void {
  const lines = draft.commentsOf(value);
  if (lines.length > 0) node.commentBefore = lines.map((line) => ` ${line}`).join('\n');
}

function isScalar(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && value !== undefined);
}
