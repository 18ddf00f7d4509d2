import type { CompiledRoute } from './compiled-route.js';

interface IndexNode {
  readonly children: Map<string, IndexNode>;
  /** Routes bound exactly here (by their literal path segments). */
  readonly own: number[];
  /** Every route a path reaching this node may match, in the order written. */
  candidates: readonly CompiledRoute[];
}

/**
 * A site's routes in a trie of the path segments each is bound to. A request
 * walks its own path as deep as the trie goes and tries that node's candidates:
 * the routes bound there or above (routes with no fixed path sit at the root),
 * precomputed in the order written, so the first match is the same as a scan of
 * every route, at the cost of the few that could match.
 */
export class PathIndex {
  private readonly root: IndexNode = newNode();

  constructor(routes: readonly CompiledRoute[]) {
    routes.forEach((route, index) => {
      let node = this.root;
      for (const segment of route.matcher.boundSegments()) {
        let child = node.children.get(segment);
        if (!child) node.children.set(segment, (child = newNode()));
        node = child;
      }
      node.own.push(index);
    });
    const fill = (node: IndexNode, inherited: readonly number[]): void => {
      const indexes = [...inherited, ...node.own].sort((a, b) => a - b);
      node.candidates = indexes.map((index) => routes[index] as CompiledRoute);
      for (const child of node.children.values()) fill(child, indexes);
    };
    fill(this.root, []);
  }

  candidates(path: string): readonly CompiledRoute[] {
    let node = this.root;
    let from = 1;
    while (node.children.size > 0 && from <= path.length) {
      const end = path.indexOf('/', from);
      const child = node.children.get(end < 0 ? path.slice(from) : path.slice(from, end));
      if (!child) break;
      node = child;
      if (end < 0) break;
      from = end + 1;
    }
    return node.candidates;
  }
}

function newNode(): IndexNode {
  return { children: new Map(), own: [], candidates: [] };
}
