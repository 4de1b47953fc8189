"""Vector search on pgvector at 100,000 and 1,000,000 rows: HNSW build, query latency, recall@20 against
exact search, and filtered queries that must return k, next to an exact scan in the same run.

    .venv/bin/python bench/vector_search.py                      # 100k and 1M (minutes)
    .venv/bin/python bench/vector_search.py --rows 20000         # a quick small run

Set-up (in a temp directory, cleaned up): a fresh embedded PostgreSQL; per size a table shaped like
the app's ``embeddings`` (``model_id``, an untyped ``halfvec`` column) plus two filter columns true for
~10 % and ~1 % of rows. Vectors are synthetic but clustered: ``--clusters`` gaussian centres on the
unit sphere, each row a centre plus noise, L2-normalised (like embeddings of similar pictures). They
are loaded with binary ``COPY`` (half floats written by numpy), then ``ANALYZE``. The index is the
one ``EmbeddingStore.ensure_model`` creates: a partial HNSW index on ``(embedding::halfvec(512))
halfvec_cosine_ops WHERE model_id = 1`` with the store's m / ef_construction, built with
``--maintenance-work-mem`` and ``--parallel-workers``, and timed.

Queries (``--queries`` fresh points from the same distribution, k = 20), each timed on the client
(prepared statements over the Unix socket, the same SQL shape as the store):

* exact: the index bypassed (sort key ``distance + 0``), the ground truth and the baseline;
* hnsw at each ``--ef-search`` value: p50 / p95 and recall@20 against exact;
* filtered (10 % and 1 % of rows): ``hnsw.iterative_scan = relaxed_order`` with the chosen ef_search,
  re-ranked, counting the queries that return the full k; and the exact filtered scan, to see where
  exact search wins (the store's ``EXACT_BELOW``).

Human-readable lines first; the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import percentile, say, stage
from core.db.embedded import EmbeddedDatabase
from core.embeddings.store import EmbeddingStore

TARGETS = {"p95_ms_100k": 50.0, "p95_ms_1m": 20.0, "recall20": 0.95, "filtered_k_returned": 1.0}
K = 20
MODEL_ID = 1


def label(rows: int) -> str:
    return f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


# -- data ------------------------------------------------------------------------------------------


class Data:
    """Clustered unit vectors, reproducible from a seed."""

    def __init__(self, dims: int, clusters: int, spread: float, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((clusters, dims)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.dims, self.spread = dims, spread

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        picks = rng.integers(0, len(self.centres), n)
        noise = rng.standard_normal((n, self.dims)).astype(np.float32) * (self.spread / math.sqrt(self.dims))
        vectors = self.centres[picks] + noise
        normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normalised


def copy_rows(first_id: int, vectors: np.ndarray, rng: np.random.Generator) -> bytes:
    """Binary COPY rows (id bigint, model_id int, sel10 bool, sel1 bool, embedding halfvec)."""
    n, dims = vectors.shape
    row = np.dtype(
        [
            ("nfields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("model_len", ">i4"),
            ("model", ">i4"),
            ("sel10_len", ">i4"),
            ("sel10", "u1"),
            ("sel1_len", ">i4"),
            ("sel1", "u1"),
            ("vec_len", ">i4"),
            ("vec_dim", ">i2"),
            ("vec_unused", ">i2"),
            ("vec", ">f2", (dims,)),
        ]
    )
    out = np.zeros(n, dtype=row)
    out["nfields"] = 5
    out["id_len"], out["id"] = 8, np.arange(first_id, first_id + n)
    out["model_len"], out["model"] = 4, MODEL_ID
    draw = rng.random(n)
    out["sel10_len"], out["sel10"] = 1, draw < 0.10
    out["sel1_len"], out["sel1"] = 1, draw < 0.01
    out["vec_len"], out["vec_dim"] = 4 + 2 * dims, dims
    out["vec"] = vectors.astype(np.float16)
    return out.tobytes()


def load(conn: psycopg.Connection, table: str, rows: int, data: Data, seed: int) -> None:
    rng = np.random.default_rng(seed)
    conn.execute(
        f"CREATE UNLOGGED TABLE {table} (id bigint, model_id int, sel10 bool, sel1 bool, embedding halfvec)"
    )
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    chunk = 50_000
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(header)
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            copy.write(copy_rows(start + 1, data.sample(n, rng), rng))
        copy.write((-1).to_bytes(2, "big", signed=True))
    conn.execute(f"ALTER TABLE {table} SET LOGGED")
    conn.execute(f"ANALYZE {table}")


# -- queries ---------------------------------------------------------------------------------------


def vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.5f}" for x in v) + "]"


def search_sql(table: str, dims: int, where: str, exact: bool) -> str:
    distance = f"(embedding::halfvec({dims})) <=> %s::halfvec({dims})"
    order = f"({distance}) + 0" if exact else distance
    # Table and column names are the bench's own.
    inner = f"SELECT id, {distance} AS distance FROM {table} WHERE model_id = {MODEL_ID} {where} "  # noqa: S608
    inner += f"ORDER BY {order} LIMIT {K}"
    return f"SELECT id FROM ({inner}) hits ORDER BY distance, id"  # noqa: S608


def run_queries(
    conn: psycopg.Connection, sql: str, queries: list[str], settings: dict[str, Any]
) -> tuple[list[list[int]], list[float]]:
    results: list[list[int]] = []
    times: list[float] = []
    with conn.transaction():
        for name, value in settings.items():
            conn.execute(f"SET LOCAL {name} = {value}")
        for q in queries:
            start = time.perf_counter()
            ids = [r[0] for r in conn.execute(sql, (q, q) if sql.count("%s") == 2 else (q,), prepare=True)]
            times.append((time.perf_counter() - start) * 1000)
            results.append(ids)
    return results, times


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)]))


def bench_size(conn: psycopg.Connection, rows: int, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    name = label(rows)
    table = f"vectors_{name}"
    dims = data.dims
    out: dict[str, Any] = {}
    with stage(f"{rows:,} rows: load with binary COPY"):
        start = time.perf_counter()
        load(conn, table, rows, data, seed=rows)
        out[f"load_s_{name}"] = round(time.perf_counter() - start, 1)
    with stage(f"{rows:,} rows: HNSW build (m={args.m}, ef_construction={args.ef_construction})"):
        conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
        conn.execute(f"SET max_parallel_maintenance_workers = {args.parallel_workers}")
        start = time.perf_counter()
        conn.execute(
            f"CREATE INDEX {table}_hnsw ON {table} USING hnsw ((embedding::halfvec({dims})) halfvec_cosine_ops) "
            f"WITH (m = {args.m}, ef_construction = {args.ef_construction}) "
            f"WHERE model_id = {MODEL_ID}"
        )
        out[f"build_s_{name}"] = round(time.perf_counter() - start, 1)
        size = conn.execute(f"SELECT pg_relation_size('{table}_hnsw')").fetchone()
        out[f"index_mib_{name}"] = round((size[0] if size else 0) / 2**20)
        conn.execute(f"VACUUM ANALYZE {table}")
    rng = np.random.default_rng(rows + 1)
    queries = [vector_text(v) for v in data.sample(args.queries, rng)]

    with stage(f"{rows:,} rows: exact search (baseline, ground truth), {len(queries)} queries"):
        truth, times = run_queries(conn, search_sql(table, dims, "", exact=True), queries, {})
        out[f"exact_p50_ms_{name}"] = round(percentile(times, 50), 2)
        out[f"exact_p95_ms_{name}"] = round(percentile(times, 95), 2)
        say(f"   exact: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms")

    # Warm the index pages once (the app's index is warm after the first searches), then measure.
    run_queries(
        conn, search_sql(table, dims, "", exact=False), queries[:50], {"hnsw.ef_search": args.ef_search[0]}
    )
    sweep: dict[int, dict[str, float]] = {}
    with stage(f"{rows:,} rows: HNSW queries at ef_search {args.ef_search}"):
        for ef in args.ef_search:
            found, times = run_queries(
                conn, search_sql(table, dims, "", exact=False), queries, {"hnsw.ef_search": ef}
            )
            sweep[ef] = {
                "p50_ms": round(percentile(times, 50), 2),
                "p95_ms": round(percentile(times, 95), 2),
                "recall20": round(recall(found, truth), 4),
            }
            say(
                f"   ef_search {ef}: p50 {sweep[ef]['p50_ms']} ms, p95 {sweep[ef]['p95_ms']} ms, "
                f"recall@20 {sweep[ef]['recall20']}"
            )
    chosen = EmbeddingStore.EF_SEARCH if EmbeddingStore.EF_SEARCH in sweep else args.ef_search[0]
    out[f"p50_ms_{name}"] = sweep[chosen]["p50_ms"]
    out[f"p95_ms_{name}"] = sweep[chosen]["p95_ms"]
    out[f"recall20_{name}"] = sweep[chosen]["recall20"]
    out[f"ef_search_sweep_{name}"] = {str(ef): v for ef, v in sweep.items()}

    filtered_full = filtered_total = 0
    for column, share in (("sel10", "10pct"), ("sel1", "1pct")):
        with stage(f"{rows:,} rows: filtered to {share} of rows, iterative scan vs exact"):
            iterative = {
                "hnsw.ef_search": chosen,
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.max_scan_tuples": EmbeddingStore.MAX_SCAN_TUPLES,
            }
            found, times = run_queries(
                conn, search_sql(table, dims, f"AND {column}", exact=False), queries, iterative
            )
            full = sum(len(f) == K for f in found)
            filtered_full += full
            filtered_total += len(found)
            exact_sample = queries[: max(20, len(queries) // 4)]
            exact_found, exact_times = run_queries(
                conn, search_sql(table, dims, f"AND {column}", exact=True), exact_sample, {}
            )
            rec = recall(found[: len(exact_found)], exact_found)
            out[f"filtered_{share}_hnsw_p50_ms_{name}"] = round(percentile(times, 50), 2)
            out[f"filtered_{share}_hnsw_p95_ms_{name}"] = round(percentile(times, 95), 2)
            out[f"filtered_{share}_recall20_{name}"] = round(rec, 4)
            out[f"filtered_{share}_exact_p50_ms_{name}"] = round(percentile(exact_times, 50), 2)
            say(
                f"   iterative: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms, "
                f"{full}/{len(found)} returned k, recall@20 {rec:.3f}; "
                f"exact: p50 {percentile(exact_times, 50):.1f} ms"
            )
    out[f"filtered_k_returned_{name}"] = round(filtered_full / filtered_total, 4)
    out["_filtered"] = (filtered_full, filtered_total)
    conn.execute(f"DROP TABLE {table}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated table sizes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.6, help="noise norm relative to a centre's")
    parser.add_argument("--ef-search", default="40,100,200", help="comma-separated values to sweep")
    parser.add_argument("--m", type=int, default=EmbeddingStore.HNSW_M)
    parser.add_argument("--ef-construction", type=int, default=EmbeddingStore.HNSW_EF_CONSTRUCTION)
    parser.add_argument("--maintenance-work-mem", default="3GB")
    parser.add_argument("--parallel-workers", type=int, default=1, help="max_parallel_maintenance_workers")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",") if r.strip()]
    args.ef_search = sorted({int(e) for e in args.ef_search.split(",")} | {EmbeddingStore.EF_SEARCH})

    tmp = Path(tempfile.mkdtemp(prefix="pixsim-vector-bench-"))
    database: EmbeddedDatabase | None = None
    summary: dict[str, Any] = {
        "dims": args.dims,
        "clusters": args.clusters,
        "queries": args.queries,
        "k": K,
        "m": args.m,
        "ef_construction": args.ef_construction,
    }
    try:
        with stage("embedded PostgreSQL"):
            database = EmbeddedDatabase(tmp / "data")
            status = database.start()
            say(f"   PostgreSQL {status.postgres_version}, {os.cpu_count()} CPUs")
        url = status.url.set(drivername="postgresql").render_as_string(hide_password=False)
        data = Data(args.dims, args.clusters, args.spread)
        full = total = 0
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            summary["pgvector"] = version[0] if version else None
            for rows in sizes:
                result = bench_size(conn, rows, data, args)
                f, t = result.pop("_filtered")
                full, total = full + f, total + t
                summary.update(result)
        summary["filtered_k_returned"] = round(full / total, 4) if total else None
        summary["targets"] = TARGETS
    finally:
        if database is not None:
            database.stop()
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
