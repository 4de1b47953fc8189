"""Layered layout properties: parents above children, no overlaps, sensible multi-parent placement,
cycles broken without hanging, components packed apart, 10,000 nodes within the time budget."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.lineage_shapes import synthetic_lineage
from core.lineage_graph import GraphLayout, LayoutSpacing, layout_graph


def boxes_overlap(layout: GraphLayout) -> bool:
    """True when two node boxes intersect anywhere in the drawing."""
    s = layout.spacing
    order = np.lexsort((layout.x, np.round(layout.y)))
    xs, ys = layout.x[order], layout.y[order]
    same_row = np.isclose(np.diff(ys), 0)
    too_close = np.diff(xs) < s.node_width
    if np.any(same_row & too_close):
        return True
    # Different rows never overlap when rows are a node height plus a gap apart.
    rows = np.unique(np.round(layout.y))
    return bool(len(rows) > 1 and np.diff(rows).min() < s.node_height)


def test_every_edge_goes_downward_and_nodes_do_not_overlap() -> None:
    nodes, edges = synthetic_lineage(1500, seed=3)
    pairs = [(e.parent, e.child) for e in edges]
    layout = layout_graph([n.id for n in nodes], pairs)
    for i, (parent, child) in enumerate(pairs):
        route = layout.routes[i]
        assert layout.position(parent)[1] < layout.position(child)[1]
        assert np.all(np.diff(route[:, 1]) > 0), "a route turns back up"
        assert route[0, 1] == pytest.approx(layout.position(parent)[1] + layout.spacing.node_height / 2)
        assert route[-1, 1] == pytest.approx(layout.position(child)[1] - layout.spacing.node_height / 2)
    assert not boxes_overlap(layout)
    assert layout.reversed_edges == frozenset()
    assert layout.x.min() >= layout.spacing.node_width / 2 - 1e-6
    assert layout.x.max() <= layout.width


def test_multi_parent_children_sit_between_their_parents() -> None:
    # A transition between stills 1 and 3, a storyboard of 1, 2, 3, 4 keyframes.
    layout = layout_graph([1, 2, 3, 4, 10, 11], [(1, 10), (3, 10), (1, 11), (2, 11), (3, 11), (4, 11)])
    for child, parents in ((10, (1, 3)), (11, (1, 2, 3, 4))):
        xs = [layout.position(p)[0] for p in parents]
        assert min(xs) <= layout.position(child)[0] <= max(xs)
        assert all(layout.position(p)[1] < layout.position(child)[1] for p in parents)


def test_a_still_used_late_sits_just_above_its_child() -> None:
    # Chain 1→2→3→4 and a still 9 used as a keyframe of 4 only: 9 belongs on 4's layer above, not at the top.
    layout = layout_graph([1, 2, 3, 4, 9], [(1, 2), (2, 3), (3, 4), (9, 4)])
    assert layout.layer[layout.index_of[9]] == layout.layer[layout.index_of[4]] - 1


def test_long_edges_bend_through_the_layers_they_cross() -> None:
    layout = layout_graph([1, 2, 3, 4], [(1, 2), (2, 3), (3, 4), (1, 4)])
    long_route = layout.routes[3]
    assert len(long_route) == 4  # parent, two layer crossings, child
    assert not boxes_overlap(layout)


def test_cycles_are_broken_deterministically_and_never_hang() -> None:
    edges = [(1, 2), (2, 3), (3, 1), (3, 4), (4, 2)]
    first = layout_graph([1, 2, 3, 4], edges)
    again = layout_graph([1, 2, 3, 4], edges)
    assert first.reversed_edges and first.reversed_edges == again.reversed_edges
    assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    for i, (parent, child) in enumerate(edges):
        dy = first.position(child)[1] - first.position(parent)[1]
        assert (dy < 0) == (i in first.reversed_edges), "only the reversed edges point up"
    # A big tangle of cycles (every node points at the next, around a ring, plus chords) finishes fast.
    n = 3000
    ring = [(i, (i + 1) % n) for i in range(n)] + [(i, (i * 7 + 3) % n) for i in range(0, n, 3)]
    start = time.perf_counter()
    tangled = layout_graph(list(range(n)), ring)
    assert time.perf_counter() - start < 5
    assert tangled.reversed_edges and not boxes_overlap(tangled)


def test_components_are_packed_side_by_side_with_the_focus_first() -> None:
    spacing = LayoutSpacing()
    edges = [(1, 2), (3, 4), (4, 5), (6, 7)]
    layout = layout_graph([1, 2, 3, 4, 5, 6, 7, 8], edges, first_component_of=6, spacing=spacing)
    assert set(layout.component.tolist()) == {0, 1, 2, 3}
    assert layout.position(6) == pytest.approx((spacing.node_width / 2, spacing.node_height / 2))
    assert not boxes_overlap(layout)
    # Unknown ends and self-edges are ignored, not fatal.
    odd = layout_graph([1, 2], [(1, 2), (1, 99), (2, 2)])
    assert len(odd.routes) == 3 and len(odd.routes[1]) == 0 and len(odd.routes[2]) == 0
    assert len(layout_graph([], []).node_ids) == 0


def test_ten_thousand_nodes_lay_out_within_a_second() -> None:
    nodes, edges = synthetic_lineage(10_000)
    pairs = [(e.parent, e.child) for e in edges]
    ids = [n.id for n in nodes]
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        layout = layout_graph(ids, pairs)
        timings.append(time.perf_counter() - start)
    assert len(layout.node_ids) == 10_000
    assert sorted(timings)[1] < 1.0, timings
    assert not boxes_overlap(layout)
