"""Control-flow facts of a function: reverse post-order, cycles and dominators."""

from __future__ import annotations

from epass.ir.model import Block, Function


def reverse_postorder(func: Function) -> list[Block]:
    """Blocks reachable from the entry, each before its successors (back edges aside)."""
    post: list[Block] = []
    seen = {func.entry}
    stack = [(func.entry, iter(func.entry.successors))]
    while stack:
        node, it = stack[-1]
        for s in it:
            if s not in seen:
                seen.add(s)
                stack.append((s, iter(s.successors)))
                break
        else:
            post.append(node)
            stack.pop()
    return post[::-1]


def in_cycles(func: Function) -> set[Block]:
    """Reachable blocks that lie on a cycle: those that can run more than once per call.

    Kosaraju: walking the reversed edges from each block in reverse post-order
    collects one strongly connected component at a time."""
    preds, order = func.predecessors(), reverse_postorder(func)
    reachable = set(order)
    component: dict[Block, int] = {}
    for root in order:
        if root in component:
            continue
        component[root] = id(root)
        stack = [root]
        while stack:
            for p in preds[stack.pop()]:
                if p in reachable and p not in component:
                    component[p] = id(root)
                    stack.append(p)
    sizes: dict[int, int] = {}
    for c in component.values():
        sizes[c] = sizes.get(c, 0) + 1
    return {b for b, c in component.items() if sizes[c] > 1 or b in b.successors}


class Dominators:
    """Immediate dominators (Cooper, Harvey and Kennedy's iterative algorithm)."""

    def __init__(self, func: Function) -> None:
        self.order = reverse_postorder(func)
        self.index = {b: i for i, b in enumerate(self.order)}
        preds = func.predecessors()
        self.idom: dict[Block, Block] = {func.entry: func.entry}
        changed = True
        while changed:
            changed = False
            for b in self.order[1:]:
                done = [p for p in preds[b] if p in self.idom]
                if not done:
                    continue
                new = done[0]
                for p in done[1:]:
                    new = self._intersect(p, new)
                if self.idom.get(b) is not new:
                    self.idom[b] = new
                    changed = True

    def _intersect(self, a: Block, b: Block) -> Block:
        while a is not b:
            while self.index[a] > self.index[b]:
                a = self.idom[a]
            while self.index[b] > self.index[a]:
                b = self.idom[b]
        return a

    def reachable(self, b: Block) -> bool:
        return b in self.idom

    def dominates(self, a: Block, b: Block) -> bool:
        """Whether every path from the entry to `b` goes through `a`."""
        if b not in self.idom:
            return True  # unreachable code is dominated by everything
        while True:
            if b is a:
                return True
            parent = self.idom[b]
            if parent is b:
                return False
            b = parent
