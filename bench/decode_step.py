"""What batching can buy on this CPU: the cost of one llama.cpp decode step of n sequences.

Why: continuous batching (``backends/llamacpp_batch.py``) raises aggregate tokens/s only as far
as llama.cpp's kernels make a step of n sequences cheaper than n steps of one. This measures
that ceiling with llama.cpp alone (llama-cpp-python's C API, no rankgate code on the path): each
of 8 sequences reads the same-length prompt into its own cache, then steps of 1, 2, 4 and 8
sequences (one new token each, logits for all, as the engine asks) are timed, in the order
1, 2, 4, 8, 1, 4, 8 so drift shows. Reported per n: median step ms, the step's cost relative to
n = 1, and the aggregate tokens/s it allows (n ÷ step) — the upper bound of
``bench/panel_speed.py``'s batched/serial ratio at concurrency n.

Run alone on the machine (llama.cpp's threads slow down badly when another process takes a core):

    .venv/bin/python bench/decode_step.py [--models qwen2.5-coder-0.5b,...] [--gguf FILE ...]
        [--threads 2] [--prompt-tokens 64] [--steps 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

SEQS = 8
ORDER = (1, 2, 4, 8, 1, 4, 8)


def step_costs(path: Path, threads: int, prompt_tokens: int, steps: int) -> dict[int, float]:
    """Median seconds of one decode step of n sequences, for n in ORDER."""
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    llama_cpp.llama_backend_init()
    with suppress_stdout_stderr(disable=False):
        model = llama_cpp.llama_model_load_from_file(str(path).encode(),
                                                     llama_cpp.llama_model_default_params())
    if not model:
        raise SystemExit(f"llama.cpp could not load {path}")
    p = llama_cpp.llama_context_default_params()
    p.n_ctx = (prompt_tokens + steps * len(ORDER) + 16) * SEQS
    p.n_batch = p.n_ubatch = max(prompt_tokens, SEQS)
    p.n_seq_max = SEQS
    p.n_threads = p.n_threads_batch = threads
    p.kv_unified = False  # as the engine: a cache per sequence
    p.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    with suppress_stdout_stderr(disable=False):
        ctx = llama_cpp.llama_init_from_model(model, p)
    batch = llama_cpp.llama_batch_init(p.n_batch, 0, 1)

    def decode(items: list[tuple[int, int, int]]) -> None:
        batch.n_tokens = len(items)
        for i, (tok, pos, seq) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, True
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")

    try:
        for s in range(SEQS):  # distinct prompts, one per sequence
            decode([(100 + (j * 7 + s * 13) % 1000, j, s) for j in range(prompt_tokens)])
        pos = [prompt_tokens] * SEQS
        times: dict[int, list[float]] = {}
        for n in ORDER:
            for r in range(steps):
                t = time.perf_counter()
                decode([(200 + r, pos[s], s) for s in range(n)])
                if r >= 2:  # the first steps of a new shape warm up
                    times.setdefault(n, []).append(time.perf_counter() - t)
                for s in range(n):
                    pos[s] += 1
    finally:
        llama_cpp.llama_batch_free(batch)
        with suppress_stdout_stderr(disable=False):
            llama_cpp.llama_free(ctx)
            llama_cpp.llama_model_free(model)
    return {n: statistics.median(ts) for n, ts in sorted(times.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b",
                    help="embedded panel models (their prepared GGUF files)")
    ap.add_argument("--gguf", type=Path, action="append", default=[],
                    help="any other GGUF file (e.g. a requantised variant)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()

    import llama_cpp

    from rankgate.config import Settings
    from rankgate.local_models import BUNDLED, model_path
    from rankgate.panel import default_panel

    files: list[tuple[str, Path]] = []
    panel = default_panel()
    for name in filter(None, args.models.split(",")):
        spec = panel.get(name)
        if spec is None or not spec.bundled:
            raise SystemExit(f"{name!r} is not an embedded panel model: {panel.ids()}")
        files.append((name, model_path(BUNDLED[spec.bundled], Settings().home)))
    files += [(f.name, f) for f in args.gguf]
    print(f"llama.cpp: {llama_cpp.llama_print_system_info().decode().strip()}")
    print(f"load average before {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores), "
          f"threads {args.threads}")
    print("| model | n | step ms | cost ÷ n=1 | aggregate tok/s | ÷ n=1 tok/s |")
    print("|---|---|---|---|---|---|")
    for name, path in files:
        costs = step_costs(path, args.threads, args.prompt_tokens, args.steps)
        one = costs[1]
        for n, c in costs.items():
            print(f"| {name} | {n} | {1000 * c:.1f} | {c / one:.2f}× | {n / c:.1f} | "
                  f"{(n / c) / (1 / one):.2f}× |")
        sys.stdout.flush()
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
