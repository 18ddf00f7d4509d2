/** How many capturing groups a regex source has (0 when it does not compile): what $1.. in a `to` template may refer to. */
export function countGroups(source: string): number {
  try {
    return (new RegExp(`${source}|`).exec('')?.length ?? 1) - 1;
  } catch {
    return 0;
  }
}
