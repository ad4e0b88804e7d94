"""A seeded mutation fuzzer over chat-completion request bodies, and the judge of what the
gateway answers to them.

The seeds are the conversation corpus (``tests/data/conversations``: real shapes agent
frameworks and the official clients send). Each mutant applies one to three mutations — drop a
field, null it, change its JSON type, put a huge or empty value in it, nest it wrongly (a
content part as a bare string, ``tool_calls`` as an object, ``function.arguments`` as an
object), an unknown role or part type, a duplicated message, a renamed or extra key — and
remembers which fields it touched, so a 400 for a one-field mutation can be required to name a
``param``. The same seed always gives the same mutants.

``problems`` says what is wrong with one answer (a 5xx, an error that is not OpenAI-shaped, a
stream that ends with an error event...); ``shrink`` reduces a failing body to a small one that
still fails the same way, for the report.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).parent / "data" / "conversations"

Loc = tuple[str | int, ...]

#: a 1 MB value: big, yet several fit under the gateway's 4 MiB body limit
ONE_MB = ("rankgate fuzz " * 75_000)[:1_000_000]
#: one value over the 4 MiB limit: a 413 is the honest answer
OVER_LIMIT = "z" * (4 * 1024 * 1024 + 10)
_HUGE: list[Any] = [1e308, -1e308, 2**63, 2**63 - 1, -(2**63), 2**64, -1, 0, 10**9, 10**18,
                    1e-308, -0.0, 3.5, 1e9]
_ODD_STRINGS = ["", " ", "\u0000", "\ufeff", "\u202eevil", "🧑‍🚀" * 64, "x" * 20_000, "null",
                "0", "{}", "[]", "true", "<|im_end|>", "</s>", "\n\n\n", "é\u0301" * 500]
_ROLES = ["robot", "", "USER", "system ", "model", "tool_result", "Assistant", "ai", "null"]
_TYPES = ["video_url", "", "TEXT", "image", "input_text", "output_text", "function", "json"]
_NEW_KEYS = ["", "x-fuzz", "99999999", "-1", "ROLE", "content ", "__proto__", "model"]
_ENUM_KEYS = ("role", "type", "tool_choice", "detail", "format", "reasoning_effort",
              "service_tier", "function_call")


def corpus() -> dict[str, dict[str, Any]]:
    """The conversation corpus by file stem: ``{"description", "valid", "needs" | "param",
    "body"}`` (bodies have no ``model``)."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(CORPUS_DIR.glob("*.json"))}


# -- paths into a JSON value ------------------------------------------------------------------
def render(loc: Loc) -> str:
    """``("messages", 2, "content", 0, "text")`` as the gateway names it:
    ``messages[2].content[0].text``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def walk(value: Any, prefix: Loc = ()) -> Iterator[Loc]:
    """Every location inside ``value`` (not the root itself), parents before children."""
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        loc = (*prefix, k)
        yield loc
        yield from walk(v, loc)


def get(root: Any, loc: Loc) -> Any:
    for k in loc:
        root = root[k]
    return root


def _set(root: Any, loc: Loc, value: Any) -> None:
    get(root, loc[:-1])[loc[-1]] = value


def _remove(root: Any, loc: Loc) -> None:
    parent = get(root, loc[:-1])
    if isinstance(parent, dict):
        del parent[loc[-1]]
    else:
        parent.pop(loc[-1])


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    return {int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(v)]


# -- the mutations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Mutant:
    """One fuzzed request body and what was done to it."""

    body: dict[str, Any]
    seed: str  # corpus file it came from
    ops: tuple[str, ...]  # "retype(list) at messages[1].content", ...
    touched: tuple[Loc, ...]  # the fields changed (one per op)

    @property
    def single_field(self) -> bool:
        """Exactly one field was changed: a 400 must then say which (``param``)."""
        return len(self.touched) == 1


Op = Callable[[random.Random, dict[str, Any], Loc], str | None]


def _drop(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    _remove(body, loc)
    return "drop"


def _null(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    _set(body, loc, None)
    return "null"


def _retype(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    old = get(body, loc)
    choices: dict[str, Any] = {"str": "fuzz", "int": 7, "float": 0.5, "list": [old],
                               "dict": {"value": old}, "bool": rng.random() < 0.5,
                               "empty-list": [], "empty-dict": {}}
    if isinstance(old, str) and old.strip().lstrip("-").isdigit():
        choices["int"] = int(old)
    if isinstance(old, int | float) and not isinstance(old, bool):
        choices["str"] = str(old)
    kinds = [k for k in choices if k.removeprefix("empty-") != _json_type(old)]
    kind = rng.choice(kinds)
    _set(body, loc, copy.deepcopy(choices[kind]))
    return f"retype({kind})"


def _huge(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    if rng.random() < 0.04:
        _set(body, loc, ONE_MB)
        return "huge(1MB string)"
    value = rng.choice(_HUGE)
    _set(body, loc, value)
    return f"huge({value!r})"


def _empty(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    old = get(body, loc)
    new: Any = [] if isinstance(old, list) else {} if isinstance(old, dict) else \
        rng.choice(_ODD_STRINGS)
    _set(body, loc, new)
    return "empty" if not new else f"odd-string({len(new)} chars)"


def _nest(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    """Wrong nesting: the shape a confused client sends."""
    old = get(body, loc)
    key = loc[-1]
    if len(loc) >= 2 and loc[-2] == "content" and isinstance(old, dict):
        new: Any = old.get("text") if isinstance(old.get("text"), str) else "part"
        what = "part-as-string"
    elif key == "tool_calls" and isinstance(old, list):
        new, what = (old[0] if old else {}), "tool_calls-as-object"
    elif key == "arguments" and isinstance(old, str):
        try:
            new = json.loads(old)
        except ValueError:
            new = {"raw": old}
        what = "arguments-as-object"
    elif isinstance(old, list):
        new, what = (old[0] if old else {}), "unwrap-list"
    elif isinstance(old, dict):
        new, what = [old], "wrap-in-list"
    else:
        new, what = [old], "wrap-in-list"
    _set(body, loc, copy.deepcopy(new))
    return what


def _enum(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    key = loc[-1]
    value = rng.choice(_ROLES) if key == "role" else rng.choice(_TYPES) if key == "type" \
        else rng.choice(["bogus", "", "AUTO", "none ", "null"])
    _set(body, loc, value)
    return f"unknown-value({value!r})"


def _duplicate(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    parent = get(body, loc[:-1])
    if not isinstance(parent, list):
        return None
    parent.insert(int(loc[-1]) + 1, copy.deepcopy(parent[int(loc[-1])]))
    return "duplicate"


def _rekey(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    target = get(body, loc)
    if not isinstance(target, dict) or not target:
        return None
    old = rng.choice(sorted(target))
    new = rng.choice(_NEW_KEYS)
    if new in target:
        return None
    target[new] = target.pop(old)
    return f"rename-key({old!r}->{new!r})"


def _add_field(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    target = get(body, loc)
    if not isinstance(target, dict):
        return None
    target[rng.choice(["fuzz_extra", "x_vendor", "cache_control"])] = rng.choice(
        [None, 1, "on", [1, 2], {"type": "ephemeral"}, True])
    return "add-field"


def _over_limit(rng: random.Random, body: dict[str, Any], loc: Loc) -> str | None:
    _set(body, loc, OVER_LIMIT)
    return "over-the-body-limit"


_OPS: list[tuple[Op, float]] = [
    (_drop, 12), (_null, 10), (_retype, 20), (_huge, 12), (_empty, 10), (_nest, 10),
    (_enum, 9), (_duplicate, 7), (_rekey, 4), (_add_field, 4), (_over_limit, 0.15),
]


class Fuzzer:
    """Mutants of the corpus bodies, reproducible from ``seed``.

    ``models``: the ``model`` each base body gets (picked at random; the fuzzer may then
    mutate it too). ``token_cap``: for a slow local model, cap ``max_tokens`` /
    ``max_completion_tokens`` that are plausible ints (≤ ``context_window``) and add
    ``max_tokens`` when neither is set — values past the context window are left alone (they
    must get a 400).
    """

    def __init__(self, seeds: dict[str, dict[str, Any]], seed: int, models: list[str], *,
                 token_cap: int | None = None, context_window: int = 8192,
                 over_limit: bool = True) -> None:
        self.seeds = seeds
        self.names = sorted(seeds)
        # invalid seeds are already refused; mutating valid ones explores more
        self.weights = [1.0 if seeds[n]["valid"] else 0.35 for n in self.names]
        self.rng = random.Random(seed)
        self.models = models
        self.token_cap = token_cap
        self.context_window = context_window
        self.ops = [(op, w) for op, w in _OPS if over_limit or op is not _over_limit]

    def _loc_for(self, op: Op, body: dict[str, Any]) -> Loc | None:
        rng = self.rng
        every = list(walk(body))
        if not every:
            return None
        if op is _enum:
            enums = [loc for loc in every if loc[-1] in _ENUM_KEYS]
            if enums:
                return rng.choice(enums)
        if op is _nest and rng.random() < 0.6:
            special = [loc for loc in every if loc[-1] in ("tool_calls", "arguments") or
                       (len(loc) >= 2 and loc[-2] == "content")]
            if special:
                return rng.choice(special)
        if op is _duplicate:
            items = [loc for loc in every if isinstance(loc[-1], int)]
            if items:
                messages = [loc for loc in items if len(loc) == 2 and loc[0] == "messages"]
                return rng.choice(messages if messages and rng.random() < 0.5 else items)
        if op in (_rekey, _add_field):
            dicts = [loc for loc in every if isinstance(get(body, loc), dict)]
            return rng.choice(dicts) if dicts else None
        if rng.random() < 0.35:
            return (rng.choice(sorted(body)),)
        return rng.choice(every)

    def mutant(self) -> Mutant:
        rng = self.rng
        name = rng.choices(self.names, weights=self.weights)[0]
        body = {"model": rng.choice(self.models), **copy.deepcopy(self.seeds[name]["body"])}
        n_ops = rng.choices([1, 2, 3], weights=[75, 18, 7])[0]
        ops: list[str] = []
        touched: list[Loc] = []
        ops_list, weights = zip(*self.ops, strict=True)
        for _ in range(40):  # enough tries to find applicable ops
            if len(ops) == n_ops:
                break
            op = rng.choices(ops_list, weights=weights)[0]
            loc = self._loc_for(op, body)
            if loc is None:
                continue
            what = op(rng, body, loc)
            if what is not None:
                ops.append(f"{what} at {render(loc)}")
                touched.append(loc)
        if self.token_cap is not None:
            cap_tokens(body, self.token_cap, self.context_window)
        return Mutant(body, name, tuple(ops), tuple(touched))

    def mutants(self, n: int) -> Iterator[Mutant]:
        for _ in range(n):
            yield self.mutant()


def cap_tokens(body: dict[str, Any], cap: int, context_window: int) -> None:
    """Keep a local model's generation short without hiding an out-of-range value."""
    present = False
    for key in ("max_tokens", "max_completion_tokens"):
        v = body.get(key)
        if v is not None:
            present = True
        if isinstance(v, int) and not isinstance(v, bool) and cap < v <= context_window:
            body[key] = cap
    if not present:
        body["max_tokens"] = cap


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")


# -- judging an answer ------------------------------------------------------------------------
ERROR_FIELDS = {"message", "type", "param", "code"}


def error_of(content: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(content)
    except ValueError:
        return None
    err = obj.get("error") if isinstance(obj, dict) else None
    return err if isinstance(err, dict) else None


def problems(m: Mutant, status: int | None, content_type: str, content: bytes,
             transport_error: str | None = None) -> list[str]:
    """What is wrong with the gateway's answer to ``m`` ([] if nothing). Each problem starts
    with its kind (``5xx``, ``shape``, ``param``, ``stream``, ``completion``, ``transport``)."""
    if status is None:
        if any("over-the-body-limit" in op for op in m.ops):
            return []  # the server may answer 413 and close before the upload ends
        return [f"transport: {transport_error}"]
    if status >= 500:
        err = error_of(content) or {}
        return [f"5xx: {status} {err.get('code')}: {str(err.get('message'))[:200]}"]
    if status >= 400:
        err = error_of(content)
        if err is None or set(err) != ERROR_FIELDS or not isinstance(err["message"], str) \
                or not err["message"] or not isinstance(err["type"], str) \
                or not isinstance(err["param"], str | None):
            return [f"shape: {status} body is not an OpenAI error: {content[:200]!r}"]
        if status == 400 and m.single_field and err["param"] is None:
            return [f"param: 400 {err['code']} without param for {m.ops[0]}: "
                    f"{err['message'][:200]}"]
        return []
    if status != 200:
        return [f"completion: unexpected status {status}"]
    if content_type.startswith("text/event-stream"):
        done = False
        for line in content.decode("utf-8", "replace").splitlines():
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                done = True
                continue
            try:
                event = json.loads(data)
            except ValueError:
                return [f"stream: event is not JSON: {data[:200]!r}"]
            if isinstance(event, dict) and "error" in event:
                return [f"stream: error event {str(event['error'])[:200]}"]
        return [] if done else ["stream: ended without [DONE]"]
    try:
        obj = json.loads(content)
    except ValueError:
        return [f"completion: 200 body is not JSON: {content[:200]!r}"]
    if not isinstance(obj, dict) or not obj.get("choices"):
        return [f"completion: 200 without choices: {content[:200]!r}"]
    return []


# -- reporting --------------------------------------------------------------------------------
def shrink(body: dict[str, Any], still_fails: Callable[[dict[str, Any]], bool],
           budget: int = 120) -> dict[str, Any]:
    """A smaller body that still fails (greedy: drop top-level fields, then messages, then
    any key or list item, then cut long strings), within ``budget`` calls of ``still_fails``."""
    tries = 0

    def candidates(b: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for k in sorted(b):
            if k != "model":
                yield {kk: v for kk, v in b.items() if kk != k}
        locs = list(walk(b))
        for loc in sorted(locs, key=len):
            c = copy.deepcopy(b)
            _remove(c, loc)
            yield c
        for loc in locs:
            v = get(b, loc)
            if isinstance(v, str) and len(v) > 40:
                c = copy.deepcopy(b)
                _set(c, loc, v[:20])
                yield c

    current = body
    progress = True
    while progress and tries < budget:
        progress = False
        for cand in candidates(current):
            if tries >= budget:
                break
            tries += 1
            if still_fails(cand):
                current, progress = cand, True
                break
    return current


def show(body: Any, limit: int = 1500) -> str:
    """A body for a failure report: long strings abbreviated, the whole cut at ``limit``."""
    def abbreviate(v: Any) -> Any:
        if isinstance(v, str) and len(v) > 120:
            return f"{v[:40]}…<{len(v)} chars>"
        if isinstance(v, list):
            return [abbreviate(x) for x in v]
        if isinstance(v, dict):
            return {k: abbreviate(x) for k, x in v.items()}
        return v

    text = json.dumps(abbreviate(body), ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
