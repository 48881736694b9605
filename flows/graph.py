"""Step graph algorithms, pure and linear: stable topological order and cycle finding.

Nodes are indices 0..n-1 in file order; `needs[i]` lists the indices node i needs. The
order is deterministic: among the steps that are ready, the one written first goes first,
so the same playbook always compiles to the same plan.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def topological_order(needs: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """(order, cycles): `order` holds every node not on or after a cycle; each cycle is a
    path in the needs direction `[a, b, ..., a]` (a needs b ...), starting at its first node."""
    count = len(needs)
    dependents: list[list[int]] = [[] for _ in range(count)]
    waiting = [0] * count
    for node, required in enumerate(needs):
        for other in set(required):
            dependents[other].append(node)
            waiting[node] += 1
    ready = [node for node in range(count) if waiting[node] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for after in dependents[node]:
            waiting[after] -= 1
            if waiting[after] == 0:
                heapq.heappush(ready, after)
    if len(order) == count:
        return order, []
    placed = set(order)
    rest = [node for node in range(count) if node not in placed]
    return order, _cycles(needs, rest)


def _cycles(needs: Sequence[Sequence[int]], rest: list[int]) -> list[list[int]]:
    """One cycle per strongly connected component of the nodes Kahn's algorithm left over."""
    cycles: list[list[int]] = []
    for component in _components(needs, rest):
        if len(component) == 1:
            node = next(iter(component))
            if node in needs[node]:
                cycles.append([node, node])
            continue
        start = min(component)
        cycles.append(_path_back(needs, component, start))
    cycles.sort(key=lambda cycle: cycle[0])
    return cycles


def _components(needs: Sequence[Sequence[int]], nodes: list[int]) -> list[set[int]]:
    """Tarjan's strongly connected components, iterative (no recursion limit on big plans)."""
    inside = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[set[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            edges = [n for n in needs[node] if n in inside]
            if position < len(edges):
                work.append((node, position + 1))
                nxt = edges[position]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: set[int] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def _path_back(needs: Sequence[Sequence[int]], component: set[int], start: int) -> list[int]:
    """Shortest path start -> ... -> start along needs, inside one component."""
    parent: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for node in frontier:
            for nxt in sorted(set(needs[node]) & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return [*path, start]
                if nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]  # unreachable for a real component
