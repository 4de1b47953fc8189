"""Find-similar as the app runs it, at 100,000 library assets: ``LibraryService.search`` + ``count`` of a
``LibraryQuery`` whose ``similar_to`` names an asset, unfiltered and combined with the filter bar's filters.

    .venv/bin/python bench/find_similar.py                  # 100,000 assets (a few minutes: HNSW build)
    .venv/bin/python bench/find_similar.py --rows 5000      # a quick small run

Set-up (in a temp directory, cleaned up): a fresh embedded PostgreSQL opened the app's way
(``open_database``: migrations, the local user), filled with ``--rows`` synthetic assets by
``bench/library_ui.py``'s ``fill`` (media types, words such as "lighthouse", tags such as "boss"). The
visual-signature model is registered with ``EmbeddingStore.ensure_model``; its HNSW index is dropped,
one vector per asset is loaded by binary ``COPY`` into ``embeddings`` (clustered: ``--clusters``
gaussian centres on the unit sphere plus noise, L2-normalised, visual-signature-sized, stored as
half floats), then ``ensure_model`` builds the model's real index over them, timed (``build_s``).

Queries, each from a different source asset (``--queries`` per case, the first ``--warm-up`` not
counted), timed on the client as the grid sees them: ``search(query, 0, 200)`` then ``count(query)``
(the second is answered by the service's short-lived find-similar cache, as in the app). Cases:

* unfiltered; images only; images + a word; a word + a tag (the last two are below the store's
  ``EXACT_BELOW``, so the store plans an exact scan; ``store.last_plan`` is recorded per case);
* whether every query returned the full k (``SimilarTo.k`` cards and a count of k, or every match
  but the source when fewer match: the small runs' word + tag);
* baselines in the same run: the normal grid's first page (``search`` without ``similar_to``,
  alternating all / images), and the store's exact scan for the unfiltered case (the index bypassed,
  the same statement and k as the store's graph search), next to the store's graph search and its
  recall against the exact answer.

Human-readable lines first; the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sqlalchemy.engine import URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.bootstrap import open_database
from app.settings import load_settings
from bench._report import percentile, say, stage
from bench.library_ui import fill, libpq
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import MediaType
from core.embeddings.store import index_name
from core.embeddings.visual import VisualSignatureEmbedder
from core.library import SIMILAR_K, LibraryQuery, LibraryService, SimilarTo

PAGE = 200  # the grid's page size (ui/library_grid.py)
IMAGES = frozenset({MediaType.IMAGE})
CASES: list[tuple[str, LibraryQuery]] = [
    ("unfiltered", LibraryQuery(stack_duplicates=True)),
    ("images", LibraryQuery(stack_duplicates=True, media_types=IMAGES)),
    ("images_word", LibraryQuery(stack_duplicates=True, media_types=IMAGES, text="lighthouse")),
    ("word_tag", LibraryQuery(stack_duplicates=True, text="lighthouse", tags=frozenset({"boss"}))),
]


# -- vectors ---------------------------------------------------------------------------------------


def copy_rows(model_id: int, first_id: int, vectors: np.ndarray) -> bytes:
    """Binary COPY rows of ``embeddings (model_id bigint, asset_id bigint, embedding halfvec)``."""
    n, dims = vectors.shape
    row = np.dtype(
        [
            ("nfields", ">i2"),
            ("model_len", ">i4"),
            ("model", ">i8"),
            ("asset_len", ">i4"),
            ("asset", ">i8"),
            ("vec_len", ">i4"),
            ("vec_dim", ">i2"),
            ("vec_unused", ">i2"),
            ("vec", ">f2", (dims,)),
        ]
    )
    out = np.zeros(n, dtype=row)
    out["nfields"] = 3
    out["model_len"], out["model"] = 8, model_id
    out["asset_len"], out["asset"] = 8, np.arange(first_id, first_id + n)
    out["vec_len"], out["vec_dim"] = 4 + 2 * dims, dims
    out["vec"] = vectors.astype(np.float16)
    return out.tobytes()


def load_vectors(url: URL, model_id: int, dims: int, clusters: int, spread: float) -> tuple[int, int]:
    """One clustered unit vector per asset, by binary COPY; returns (first asset id, rows)."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((clusters, dims)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    chunk = 20_000
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        bounds = conn.execute("SELECT min(id), count(*) FROM assets").fetchone()
        assert bounds is not None
        first, rows = int(bounds[0]), int(bounds[1])
        sql = "COPY embeddings (model_id, asset_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
        with conn.cursor() as cur, cur.copy(sql) as copy:
            copy.write(header)
            for start in range(0, rows, chunk):
                n = min(chunk, rows - start)
                noise = rng.standard_normal((n, dims)).astype(np.float32) * (spread / math.sqrt(dims))
                vectors = centres[rng.integers(0, clusters, n)] + noise
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                copy.write(copy_rows(model_id, first + start, vectors))
            copy.write((-1).to_bytes(2, "big", signed=True))
        conn.execute("VACUUM ANALYZE embeddings")
    return first, rows


# -- measuring -------------------------------------------------------------------------------------


async def timed(
    sources: list[int], run: Callable[[int], Awaitable[bool]], warm_up: int
) -> tuple[list[float], list[bool]]:
    """Milliseconds and the ok flag of ``run(source)`` per source, the first ``warm_up`` left out."""
    times: list[float] = []
    oks: list[bool] = []
    for i, source in enumerate(sources):
        start = time.perf_counter()
        ok = await run(source)
        if i >= warm_up:
            times.append((time.perf_counter() - start) * 1000)
            oks.append(ok)
    return times, oks


async def measure(url: URL, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    engine = make_async_engine(url)
    sessions = make_async_session_factory(engine)
    try:
        library = LibraryService(sessions)
        store = library.embedding_store
        embedder = VisualSignatureEmbedder()
        model_id = await store.ensure_model(embedder)
        dims = int(embedder.dimensions)
        out["dims"] = dims
        with stage(f"vectors: {dims}-d, {args.clusters} clusters, binary COPY (the index dropped)"):
            with psycopg.connect(libpq(url), autocommit=True) as conn:
                conn.execute(f"DROP INDEX {index_name(model_id)}")
            start = time.perf_counter()
            first, rows = load_vectors(url, model_id, dims, args.clusters, args.spread)
            out["load_s"] = round(time.perf_counter() - start, 1)
        with stage(
            f"HNSW build by EmbeddingStore.ensure_model (m={store.HNSW_M}, "
            f"ef_construction={store.HNSW_EF_CONSTRUCTION})"
        ):
            start = time.perf_counter()
            await store.ensure_model(embedder)
            out["build_s"] = round(time.perf_counter() - start, 1)
            with psycopg.connect(libpq(url), autocommit=True) as conn:
                size = conn.execute(f"SELECT pg_relation_size('{index_name(model_id)}')").fetchone()
                out["index_mib"] = round((size[0] if size else 0) / 2**20, 1)
                conn.execute("ANALYZE embeddings")

        rng = np.random.default_rng(11)
        per_case = args.queries + args.warm_up
        # Different sources everywhere: the service caches a find-similar answer for a few seconds.
        picks = rng.choice(rows, size=min(rows, per_case * (len(CASES) + 1)), replace=False)
        sources = [int(first + p) for p in picks]
        full_k = total = 0
        for index, (name, filters) in enumerate(CASES):
            case_sources = sources[index * per_case : (index + 1) * per_case]
            matching = await library.count(filters)
            plans: set[str] = set()

            async def one(
                source: int,
                filters: LibraryQuery = filters,
                plans: set[str] = plans,
                matching: int = matching,
            ) -> bool:
                similar = SimilarTo(label="bench", model=embedder.model_id, asset_id=source)
                query = replace(filters, similar_to=similar)
                cards = await library.search(query, 0, PAGE)
                count = await library.count(query)
                if store.last_plan is not None:
                    plans.add(store.last_plan.method)
                # k whenever that many match (the source itself is left out when it matches too).
                return len(cards) == count <= similar.k and count >= min(similar.k, matching - 1)

            with stage(f"find similar, {name}: {matching} assets match the filters, {args.queries} queries"):
                times, oks = await timed(case_sources, one, args.warm_up)
            full_k += sum(oks)
            total += len(oks)
            out[f"similar_p50_ms_{name}"] = round(percentile(times, 50), 2)
            out[f"similar_p95_ms_{name}"] = round(percentile(times, 95), 2)
            out[f"full_k_fraction_{name}"] = round(sum(oks) / len(oks), 4)
            out[f"plan_{name}"] = "/".join(sorted(plans))
            out[f"matching_{name}"] = matching
            say(
                f"   p50 {out[f'similar_p50_ms_{name}']} ms, p95 {out[f'similar_p95_ms_{name}']} ms, "
                f"{sum(oks)}/{len(oks)} returned the full k={SIMILAR_K}, plan {out[f'plan_{name}']}"
            )
        out["full_k_fraction"] = round(full_k / total, 4)

        # Baselines. The store level, unfiltered, with the k the service asks for when stacking.
        k = SIMILAR_K * 2
        store_sources = sources[len(CASES) * per_case :] or sources[:per_case]
        graph: dict[int, set[int]] = {}
        exact: dict[int, set[int]] = {}

        async def store_graph(source: int) -> bool:
            hits = await store.similar_to_asset(
                model_id, source, query=LibraryQuery(), k=k, include_segments=True
            )
            graph[source] = {h.asset_id for h in hits}
            return len(hits) == k

        async def store_exact(source: int) -> bool:
            hits = await store.similar_to_asset(
                model_id, source, query=LibraryQuery(), k=k, include_segments=True, exact=True
            )
            exact[source] = {h.asset_id for h in hits}
            return len(hits) == k

        with stage(f"baseline: the store's search, unfiltered, k={k}: graph, then exact scan"):
            g_times, _ = await timed(store_sources, store_graph, args.warm_up)
            e_times, _ = await timed(store_sources, store_exact, args.warm_up)
        recall = float(np.mean([len(graph[s] & exact[s]) / max(1, len(exact[s])) for s in store_sources]))
        out["store_hnsw_p50_ms_unfiltered"] = round(percentile(g_times, 50), 2)
        out["store_hnsw_p95_ms_unfiltered"] = round(percentile(g_times, 95), 2)
        out["store_exact_p50_ms_unfiltered"] = round(percentile(e_times, 50), 2)
        out["store_exact_p95_ms_unfiltered"] = round(percentile(e_times, 95), 2)
        out[f"store_hnsw_recall{k}_unfiltered"] = round(recall, 4)
        say(
            f"   graph p50 {out['store_hnsw_p50_ms_unfiltered']} ms, p95 {out['store_hnsw_p95_ms_unfiltered']} "
            f"ms, recall {recall:.3f}; exact p50 {out['store_exact_p50_ms_unfiltered']} ms, "
            f"p95 {out['store_exact_p95_ms_unfiltered']} ms"
        )

        async def grid_page(i: int) -> bool:
            query = LibraryQuery(stack_duplicates=True, media_types=IMAGES if i % 2 else frozenset())
            return len(await library.search(query, 0, PAGE)) == PAGE

        with stage(f"baseline: the normal grid's first page ({PAGE} cards, all / images alternating)"):
            p_times, _ = await timed(list(range(per_case)), grid_page, args.warm_up)
        out["grid_page_p50_ms"] = round(percentile(p_times, 50), 2)
        out["grid_page_p95_ms"] = round(percentile(p_times, 95), 2)
        say(f"   p50 {out['grid_page_p50_ms']} ms, p95 {out['grid_page_p95_ms']} ms")
    finally:
        await engine.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="library assets (default 100000)")
    parser.add_argument("--queries", type=int, default=60, help="timed queries per case (at least 50)")
    parser.add_argument("--warm-up", type=int, default=5, help="untimed queries before each case")
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--spread", type=float, default=0.35, help="noise norm relative to a centre's")
    args = parser.parse_args()
    if args.rows < 1000 or args.queries < 1 or args.warm_up < 0:
        parser.error("--rows needs at least 1000, --queries at least 1")

    summary: dict[str, Any] = {
        "rows": args.rows,
        "queries": args.queries,
        "k": SIMILAR_K,
        "clusters": args.clusters,
        "spread": args.spread,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="pixsim-simbench-") as tmp:
        with stage("embedded PostgreSQL (open_database: migrations, the local user)"):
            settings = load_settings({"PIXSIM_DATA_DIR": f"{tmp}/data", "PIXSIM_CONFIG_DIR": f"{tmp}/cfg"})
            handle = open_database(settings)
        try:
            with stage(f"{args.rows} assets (bench/library_ui.py fill) + VACUUM ANALYZE"):
                start = time.perf_counter()
                # Content hashes only: nothing here renders a thumbnail.
                shas = {kind: [f"{i:064x}" for i in range(1, 20)] for kind in MediaType}
                fill(handle.url, args.rows, shas)
                summary["fill_s"] = round(time.perf_counter() - start, 1)
            summary.update(asyncio.run(measure(handle.url, args)))
        finally:
            handle.close()
    say(
        f"find similar p95: unfiltered {summary['similar_p95_ms_unfiltered']} ms, images "
        f"{summary['similar_p95_ms_images']} ms, images + word {summary['similar_p95_ms_images_word']} ms, "
        f"word + tag {summary['similar_p95_ms_word_tag']} ms; full k {summary['full_k_fraction']}; "
        f"grid page p95 {summary['grid_page_p95_ms']} ms; HNSW build {summary['build_s']} s"
    )
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
