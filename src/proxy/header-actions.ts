/** A route's request_headers / response_headers as the config file writes them. */
export interface HeaderActionsInput {
  readonly set?: Readonly<Record<string, string>>;
  readonly add?: Readonly<Record<string, string>>;
  readonly remove?: readonly string[];
}

/**
 * The actions folded into two steps: drop every header named in remove or set,
 * then append set's and add's pairs. That is exactly "remove, then set (replace),
 * then add", with one pass over the headers.
 */
export interface CompiledHeaderActions {
  /** Lower-case names to drop. */
  readonly drop: ReadonlySet<string>;
  /** [name, value, ...] to append, names as written in the config. */
  readonly append: readonly string[];
}

/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;
/** Message framing and hop-by-hop headers belong to the proxy; changing them breaks the exchange. */
const MANAGED = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
]);

/** Validates and compiles the actions once, at config load; undefined when there is nothing to do. */
export function compileHeaderActions(input: HeaderActionsInput | undefined): CompiledHeaderActions | undefined {
  if (input === undefined) return undefined;
  const drop = new Set<string>();
  const append: string[] = [];
  for (const name of input.remove ?? []) drop.add(checkName(name, 'remove'));
  const setNames = new Set<string>();
  for (const [name, value] of Object.entries(input.set ?? {})) {
    const lower = checkName(name, 'set');
    if (setNames.has(lower)) throw new Error(`header actions: set names "${name}" twice (header names ignore case)`);
    setNames.add(lower);
    drop.add(lower);
    append.push(name, checkValue(name, value, 'set'));
  }
  for (const [name, value] of Object.entries(input.add ?? {})) {
    checkName(name, 'add');
    append.push(name, checkValue(name, value, 'add'));
  }
  return drop.size === 0 && append.length === 0 ? undefined : { drop, append };
}

/**
 * Applies the actions to a flat [name, value, name, value, ...] list in place and
 * returns it: untouched headers keep their order, appended ones come last.
 */
export function applyHeaderActions(headers: string[], actions: CompiledHeaderActions): string[] {
  const drop = actions.drop;
  if (drop.size > 0) {
    let kept = 0;
    for (let i = 0; i < headers.length; i += 2) {
      if (drop.has((headers[i] as string).toLowerCase())) continue;
      if (kept !== i) {
        headers[kept] = headers[i] as string;
        headers[kept + 1] = headers[i + 1] as string;
      }
      kept += 2;
    }
    headers.length = kept;
  }
  const append = actions.append;
  for (let i = 0; i < append.length; i++) headers.push(append[i] as string);
  return headers;
}

function checkName(name: string, action: string): string {
  if (!TOKEN.test(name)) throw new Error(`header actions: ${action} has an invalid header name ${JSON.stringify(name)} (letters, digits and !#$%&'*+-.^_\`|~ only)`);
  const lower = name.toLowerCase();
  if (MANAGED.has(lower)) throw new Error(`header actions: ${action} cannot change ${name}: the proxy manages it`);
  return lower;
}

function checkValue(name: string, value: string, action: string): string {
  if (BAD_VALUE.test(value)) throw new Error(`header actions: ${action} ${name} has a value with CR, LF or NUL`);
  return value;
}
