import type { z } from 'zod';

type AnySchema = z.core.$ZodType;
interface Def { type: string; shape?: Record<string, AnySchema>; element?: AnySchema; innerType?: AnySchema; options?: AnySchema[]; valueType?: AnySchema; in?: AnySchema }

/** The keys the schema allows for the object at a document path (for "did you mean"). */
export function knownKeysAt(schema: AnySchema, path: readonly PropertyKey[]): string[] {
  let candidates: AnySchema[] = [schema];
  for (const part of path) {
    const next: AnySchema[] = [];
    for (const candidate of candidates.flatMap(unwrap)) {
      const def = defOf(candidate);
      if (def.type === 'object' && typeof part === 'string' && def.shape?.[part]) next.push(def.shape[part]);
      else if (def.type === 'array' && typeof part === 'number' && def.element) next.push(def.element);
      else if (def.type === 'record' && def.valueType) next.push(def.valueType);
    }
    candidates = next;
  }
  const keys = new Set<string>();
  for (const candidate of candidates.flatMap(unwrap)) {
    const def = defOf(candidate);
    if (def.type === 'object' && def.shape) for (const key of Object.keys(def.shape)) keys.add(key);
  }
  return [...keys];
}

function defOf(schema: AnySchema): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** Looks through optional/default/pipe wrappers and union branches. */
function unwrap(schema: AnySchema): AnySchema[] {
  const def = defOf(schema);
  if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) return unwrap(def.innerType);
  if (def.type === 'pipe' && def.in) return unwrap(def.in);
  if (def.type === 'union' && def.options) return def.options.flatMap(unwrap);
  return [schema];
}
