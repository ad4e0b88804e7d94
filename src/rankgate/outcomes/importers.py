"""Importers: other people's outcome matrices (wide CSV, RouterBench, LLMRouter) as outcomes.

Published routing data comes as one row per prompt with one column (or key) per model. We turn
each (prompt, model) cell into an :class:`~rankgate.outcomes.Outcome` so ranking and routing can
read it like our own evaluations. The rule throughout is *never guess silently*: a bad cell skips
only that (row, model) pair and says why, a row without a prompt is skipped whole, a column that
is not clearly a score is reported rather than imported, and every assumption we had to make
(detected format, estimated costs) is written into ``ImportResult.notes``.

Row numbers in reasons are 1-based data rows: the CSV header is not counted and blank lines are
not rows; for JSON they are the item's position in the list (or the line, for JSONL).
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rankgate.outcomes.record import Outcome

FORMATS = ("auto", "wide-csv", "routerbench", "llmrouter")

RESPONSE_SUFFIX = "|model_response"
COST_SUFFIX = "|total_cost"

_PROMPT_COLUMNS = ("prompt", "question")
_MAX_LISTED = 20  # skipped rows shown by summary(); the full list stays in ImportResult.skipped


class ImportFileError(ValueError):
    """A file (or price file) that can't be imported at all; the message names it and says why."""


@dataclass
class ImportResult:
    """What an import produced and everything it left out, with reasons.

    ``skipped`` holds both whole rows (``rows_skipped`` of them, e.g. "missing prompt") and
    single (row, model) scores (``scores_skipped``, e.g. "empty score for model X").
    """

    path: Path
    format: str
    outcomes: list[Outcome] = field(default_factory=list)
    rows_read: int = 0
    rows_skipped: int = 0
    scores_skipped: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def prompts(self) -> int:
        """Distinct prompts that produced at least one outcome."""
        return len({o.prompt_id for o in self.outcomes})

    def summary(self, max_listed: int = _MAX_LISTED) -> str:
        """A few lines for a person: counts, notes, then the first ``max_listed`` skips."""
        lines = [
            f"imported {len(self.outcomes)} outcomes ({self.prompts} prompts × "
            f"{len(self.models)} models) from {self.path.name} [{self.format}]",
            f"read {_count(self.rows_read, 'row')}; skipped "
            f"{_count(self.rows_skipped, 'whole row')} and "
            f"{_count(self.scores_skipped, 'single score')}",
        ]
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {n}" for n in self.notes]
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  row {row}: {reason}" for row, reason in self.skipped[:max_listed]]
            if len(self.skipped) > max_listed:
                lines.append(f"  … and {len(self.skipped) - max_listed} more")
        return "\n".join(lines)

    def _skip_row(self, row: int, reason: str) -> None:
        self.rows_skipped += 1
        self.skipped.append((row, reason))

    def _skip_score(self, row: int, reason: str) -> None:
        self.scores_skipped += 1
        self.skipped.append((row, reason))


# ---------------------------------------------------------------------------------------------
# values


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _score_from_text(text: str, model: str) -> float | str:
    """The score in one CSV cell, or (a ``str``) why it can't be one."""
    t = text.strip()
    if not t:
        return f"empty score for model {model}"
    v = _number(t)
    if v is None:
        return f"non-numeric score {_show(t)} for model {model}"
    if not 0.0 <= v <= 1.0:
        return f"score {t} outside [0,1] for model {model}"
    return v


def _score_from_json(value: Any, model: str) -> float | str:
    """The score in one JSON value, or (a ``str``) why it can't be one; a JSON string is not a
    number here, even when it spells one."""
    if value is None:
        return f"empty score for model {model}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"non-numeric score {_show(str(value))} for model {model}"
    if not 0.0 <= value <= 1.0:
        return f"score {value} outside [0,1] for model {model}"
    return float(value)


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class _Ids:
    """Prompt ids derived from the prompt text, so the same prompt gets the same id in every
    file (train/test overlap stays visible); a repeated prompt within one file gets ``-2``…"""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self.repeated = 0

    def for_prompt(self, prompt: str) -> str:
        base = "p" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
        n = self._seen.get(base, 0) + 1
        self._seen[base] = n
        if n == 1:
            return base
        self.repeated += 1
        return f"{base}-{n}"

    def note(self) -> str | None:
        if not self.repeated:
            return None
        return (f"repeated prompts: {_count(self.repeated, 'row')} with the text of an earlier "
                "row; their prompt_ids carry a -2, -3… suffix")


# ---------------------------------------------------------------------------------------------
# prices and estimated costs


@dataclass(frozen=True)
class Price:
    """$ per million input / output tokens."""

    input_per_mtok: float
    output_per_mtok: float


def load_prices(path: str | Path) -> dict[str, Price]:
    """Read a JSON or YAML price file shaped like LLMRouter's ``default_llm.json``:
    ``{model: {"input_price": $/Mtok, "output_price": $/Mtok, ...}}`` (the panel spelling
    ``input_price_per_mtok`` / ``output_price_per_mtok`` is accepted too)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ImportFileError(f"{p}: can't read price file ({e.strerror})") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            data = orjson.loads(raw)
    except Exception as e:  # yaml and orjson raise different error types
        raise ImportFileError(f"{p}: price file is not valid {p.suffix.lstrip('.')}: "
                              f"{e}") from None
    if not isinstance(data, dict):
        raise ImportFileError(f"{p}: price file must map model names to prices")
    prices: dict[str, Price] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict):
            raise ImportFileError(f"{p}: model {model!r}: expected an object with prices")
        values = []
        for short, long in (("input_price", "input_price_per_mtok"),
                            ("output_price", "output_price_per_mtok")):
            v = entry.get(short, entry.get(long))
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
                raise ImportFileError(f"{p}: model {model!r}: field {short!r} must be a "
                                      f"non-negative number ($ per million tokens), got {v!r}")
            values.append(float(v))
        prices[str(model)] = Price(*values)
    return prices


@dataclass
class _Costing:
    """Estimated cost for files that carry none: tokens from prompt length and an assumed
    answer length, times the price file's rates."""

    prices: dict[str, Price]
    price_file: Path
    output_tokens: int
    chars_per_token: float
    unpriced: dict[str, None] = field(default_factory=dict)
    used: bool = False

    def estimate(self, model: str, prompt: str) -> tuple[float | None, int | None, int | None]:
        price = self.prices.get(model)
        if price is None:
            self.unpriced.setdefault(model, None)
            return None, None, None
        self.used = True
        input_tokens = math.ceil(len(prompt) / self.chars_per_token)
        cost = (input_tokens * price.input_per_mtok
                + self.output_tokens * price.output_per_mtok) / 1e6
        return cost, input_tokens, self.output_tokens

    def notes(self) -> list[str]:
        out = []
        if self.used:
            out.append(
                f"costs are estimates, not measurements: input tokens = ceil(prompt characters "
                f"/ {self.chars_per_token:g}), output tokens = an assumed {self.output_tokens} "
                f"per answer, priced from {self.price_file.name} ($ per million tokens); "
                "these outcomes carry extra.estimated")
        if self.unpriced:
            out.append(f"no price in {self.price_file.name} for {', '.join(self.unpriced)}: "
                       "their cost_usd and token counts are null")
        return out


def _fill_cost(o: Outcome, costing: _Costing | None) -> None:
    if costing is None:
        return
    cost, tin, tout = costing.estimate(o.model, o.prompt)
    if cost is not None:
        o.cost_usd, o.input_tokens, o.output_tokens = cost, tin, tout
        o.extra["estimated"] = ["cost_usd", "input_tokens", "output_tokens"]


# ---------------------------------------------------------------------------------------------
# CSV


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (row number, cells) of every non-blank record."""
    # RouterBench responses can exceed csv's default 128 KiB field limit.
    csv.field_size_limit(2**31 - 1)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f, delimiter=delimiter))
    except UnicodeDecodeError as e:
        raise ImportFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ImportFileError(f"{path}: not readable as CSV ({e})") from None
    records = [r for r in records if any(c.strip() for c in r)]
    if not records:
        raise ImportFileError(f"{path}: empty file (no header row)")
    header = [c.strip() for c in records[0]]
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise ImportFileError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    return header, list(enumerate(records[1:], start=1))


def _rows_of_header_width(header: list[str], rows: list[tuple[int, list[str]]],
                          result: ImportResult) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows as {column: cell}; a row whose field count differs from the header's is skipped
    (its cells can't be matched to columns without guessing)."""
    for n, cells in rows:
        result.rows_read += 1
        if len(cells) != len(header):
            result._skip_row(n, f"row has {len(cells)} fields but the header has {len(header)}")
            continue
        yield n, dict(zip(header, cells, strict=True))


def _prompt_column(header: list[str], path: Path) -> str:
    for name in _PROMPT_COLUMNS:
        if name in header:
            return name
    raise ImportFileError(f"{path}: no 'prompt' (or 'question') column; columns are "
                          f"{', '.join(repr(c) for c in header)}")


def _is_index_column(name: str) -> bool:
    return not name or name.startswith("Unnamed:")  # pandas writes its index this way


def _classify_column(name: str, cells: list[str]) -> str | None:
    """None if ``cells`` look like scores in [0, 1], else why the column is not a score column.

    A column is scores when at least half its non-empty cells are numbers and at least half of
    those lie in [0, 1]; the odd bad cell is then skipped per row, with a reason."""
    values = [c.strip() for c in cells if c.strip()]
    if not values:
        return f"column {name!r} is empty; ignored"
    numbers = [v for v in (_number(c) for c in values) if v is not None]
    if 2 * len(numbers) < len(values):
        example = next(c for c in values if _number(c) is None)
        return f"column {name!r} is text, not scores (e.g. {_show(example)}); ignored"
    outside = [v for v in numbers if not 0.0 <= v <= 1.0]
    if 2 * len(outside) > len(numbers):
        return (f"column {name!r} is numeric but not scores in [0,1] (e.g. {outside[0]:g}); "
                "ignored")
    return None


def _emit(result: ImportResult, n: int, prompt_id: str, prompt: str, model: str, score: float,
          seen: dict[tuple[str, str], int], **fields: Any) -> Outcome | None:
    first = seen.setdefault((prompt_id, model), n)
    if first != n:
        result._skip_score(n, f"duplicate prompt_id {prompt_id!r} for model {model} "
                              f"(first at row {first})")
        return None
    o = Outcome(prompt_id=prompt_id, prompt=prompt, model=model, score=score,
                source=f"import:{result.path.name}", **fields)
    result.outcomes.append(o)
    return o


def _read_wide_csv(path: Path, result: ImportResult, costing: _Costing | None) -> None:
    header, rows = _read_csv(path)
    prompt_col = _prompt_column(header, path)
    meta = {prompt_col, "prompt_id", "category"}
    for other in _PROMPT_COLUMNS:
        if other in header and other != prompt_col:
            result.notes.append(f"prompts come from column {prompt_col!r}; column {other!r} "
                                "ignored")
            meta.add(other)
    models: list[str] = []
    for i, name in enumerate(header):
        if name in meta:
            continue
        if _is_index_column(name):
            result.notes.append(f"unnamed column {i + 1} ({name or 'no header'}) looks like "
                                "a row index; ignored")
        elif name.endswith((RESPONSE_SUFFIX, COST_SUFFIX)):
            result.notes.append(f"column {name!r} is RouterBench-style; ignored as wide CSV "
                                "(use format routerbench)")
        elif (why := _classify_column(name, [c[i] for _, c in rows if i < len(c)])) is None:
            models.append(name)
        else:
            result.notes.append(why)
    if not models:
        raise ImportFileError(f"{path}: no score columns found besides {prompt_col!r}"
                              + (f" ({'; '.join(result.notes)})" if result.notes else ""))
    result.models = models
    if prompt_col == "question":
        result.notes.append("prompts come from column 'question'")

    ids, generated_ids = _Ids(), 0
    seen: dict[tuple[str, str], int] = {}  # (prompt_id, model) -> first row
    for n, row in _rows_of_header_width(header, rows, result):
        prompt = row[prompt_col]
        if not prompt.strip():
            result._skip_row(n, "missing prompt")
            continue
        prompt_id = row.get("prompt_id", "").strip()
        if not prompt_id:
            generated_ids += "prompt_id" in row
            prompt_id = ids.for_prompt(prompt)
        category = row.get("category", "").strip() or None
        for model in models:
            score = _score_from_text(row[model], model)
            if isinstance(score, str):
                result._skip_score(n, score)
                continue
            o = _emit(result, n, prompt_id, prompt, model, score, seen, category=category)
            if o is not None:
                _fill_cost(o, costing)
    if generated_ids:
        result.notes.append(f"empty prompt_id in {_count(generated_ids, 'row')}: id derived "
                            "from the prompt text")
    if (note := ids.note()) is not None:
        result.notes.append(note)
    if costing is None:
        result.notes.append("no costs in this file: cost_usd is null (pass a price file to "
                            "estimate them, or --cost MODEL=$ per request)")


def _read_routerbench(path: Path, result: ImportResult, costing: _Costing | None) -> None:
    header, rows = _read_csv(path)
    prompt_col = _prompt_column(header, path)
    meta = {prompt_col, "sample_id", "eval_name"}
    companions: dict[str, None] = {}
    for name in header:
        for suffix in (RESPONSE_SUFFIX, COST_SUFFIX):
            if name.endswith(suffix):
                companions.setdefault(name.removesuffix(suffix), None)
    models = [name for name in header if name in companions]
    for prefix in companions:
        if prefix not in header:
            result.notes.append(f"model {prefix!r} has response/cost columns but no score "
                                f"column {prefix!r}; not imported")
    for i, name in enumerate(header):
        if name in meta or name in companions or name.endswith((RESPONSE_SUFFIX, COST_SUFFIX)):
            continue
        what = "unnamed column" if _is_index_column(name) else f"column {name!r}"
        result.notes.append(f"{what} (column {i + 1}) is neither metadata nor a model with "
                            f"{RESPONSE_SUFFIX}/{COST_SUFFIX} columns; ignored")
    if not models:
        raise ImportFileError(f"{path}: no RouterBench model columns ('<model>' next to "
                              f"'<model>{RESPONSE_SUFFIX}' or '<model>{COST_SUFFIX}')")
    result.models = models
    if costing is not None:
        result.notes.append(f"price file {costing.price_file.name} ignored: RouterBench files "
                            "carry their own costs")

    ids = _Ids()
    seen: dict[tuple[str, str], int] = {}  # (prompt_id, model) -> first row
    no_cost: list[tuple[int, str, str]] = []  # (row, model, cell) where a cost was unusable
    for n, row in _rows_of_header_width(header, rows, result):
        prompt = row[prompt_col]
        if not prompt.strip():
            result._skip_row(n, "missing prompt")
            continue
        prompt_id = row.get("sample_id", "").strip() or ids.for_prompt(prompt)
        category = row.get("eval_name", "").strip() or None
        for model in models:
            score = _score_from_text(row[model], model)
            if isinstance(score, str):
                result._skip_score(n, score)
                continue
            cost: float | None = None
            if (cost_col := model + COST_SUFFIX) in row:
                cell = row[cost_col].strip()
                cost = _number(cell)
                if cost is None or cost < 0:
                    cost = None
                    no_cost.append((n, model, cell))
            response = row.get(model + RESPONSE_SUFFIX) or None
            _emit(result, n, prompt_id, prompt, model, score, seen,
                  cost_usd=cost, response=response, category=category)
    if no_cost:
        n, model, cell = no_cost[0]
        result.notes.append(f"unusable costs (empty or not a non-negative number): "
                            f"{len(no_cost)}, cost_usd left null (first: row {n}, model {model}, "
                            f"{_show(cell)})")
    if (note := ids.note()) is not None:
        result.notes.append(note)


# ---------------------------------------------------------------------------------------------
# LLMRouter JSON

_LLMROUTER_PROMPT_KEYS = ("question", "query", "prompt")


def _load_json_items(path: Path) -> list[tuple[int, Any]]:
    """(row number, item) from a JSON list or a JSONL file; a JSONL line that isn't JSON
    becomes an ``ImportFileError`` naming the line, since its row count would be a guess."""
    raw = path.read_bytes()
    if path.suffix.lower() == ".jsonl":
        items = []
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((n, orjson.loads(line)))
            except orjson.JSONDecodeError as e:
                raise ImportFileError(f"{path}:{n}: not JSON ({e})") from None
        return items
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ImportFileError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, list):
        raise ImportFileError(f"{path}: expected a JSON list of items, got "
                              f"{type(data).__name__}")
    return list(enumerate(data, start=1))


def _read_llmrouter(path: Path, result: ImportResult, costing: _Costing | None) -> None:
    ids = _Ids()
    seen: dict[tuple[str, str], int] = {}  # (prompt_id, model) -> first row
    models: dict[str, None] = {}
    prompt_keys: dict[str, None] = {}
    ignored_keys: dict[str, None] = {}
    for n, item in _load_json_items(path):
        result.rows_read += 1
        if not isinstance(item, dict):
            result._skip_row(n, f"item is {type(item).__name__}, not an object")
            continue
        key = next((k for k in _LLMROUTER_PROMPT_KEYS if k in item), "question")
        prompt = item.get(key)
        if not isinstance(prompt, str) or not prompt.strip():
            result._skip_row(n, "missing prompt")
            continue
        prompt_keys.setdefault(key, None)
        scores = item.get("scores")
        if not isinstance(scores, dict) or not scores:
            result._skip_row(n, "no 'scores' object")
            continue
        for k in item:
            if k not in (key, "scores", "cluster_id"):
                ignored_keys.setdefault(k, None)
        cluster = item.get("cluster_id")
        category = None if cluster is None else str(cluster)
        prompt_id = ids.for_prompt(prompt)
        for model, value in scores.items():
            models.setdefault(model, None)
            score = _score_from_json(value, model)
            if isinstance(score, str):
                result._skip_score(n, score)
                continue
            o = _emit(result, n, prompt_id, prompt, model, score, seen, category=category)
            if o is not None:
                _fill_cost(o, costing)
    result.models = list(models)
    if list(prompt_keys) != ["question"] and prompt_keys:
        result.notes.append(f"prompts come from item key(s) {', '.join(prompt_keys)}")
    if ignored_keys:
        result.notes.append(f"item keys ignored: {', '.join(ignored_keys)}")
    if (note := ids.note()) is not None:
        result.notes.append(note)
    if costing is None:
        result.notes.append("no costs in this file (LLMRouter data has none): cost_usd is null; "
                            "pass a price file such as default_llm.json to estimate them")


# ---------------------------------------------------------------------------------------------
# detection and the entry point


def detect_format(path: str | Path) -> tuple[str, str]:
    """(format, why) from the file name and its first bytes / header row."""
    p = Path(path)
    suffix = p.suffix.lower()
    with p.open("rb") as f:
        head = f.read(65536)
    looks_json = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{")
    if suffix in (".json", ".jsonl") or (suffix not in (".csv", ".tsv") and looks_json):
        items = _load_json_items(p)
        first = next((item for _, item in items if isinstance(item, dict)), None)
        if first is not None and isinstance(first.get("scores"), dict):
            return "llmrouter", "JSON items with a 'scores' object"
        raise ImportFileError(f"{p}: JSON, but not LLMRouter-style (items need a 'scores' "
                              "object); outcome JSONL files need no import")
    header, _ = _read_csv(p)
    rb = [c for c in header if c.endswith((RESPONSE_SUFFIX, COST_SUFFIX))]
    if rb:
        return "routerbench", f"CSV with {len(rb)} '{RESPONSE_SUFFIX}'/'{COST_SUFFIX}' columns"
    return "wide-csv", "CSV without RouterBench response/cost columns"


_READERS: dict[str, Callable[[Path, ImportResult, _Costing | None], None]] = {
    "wide-csv": _read_wide_csv,
    "routerbench": _read_routerbench,
    "llmrouter": _read_llmrouter,
}


def _apply_given_costs(result: ImportResult, costs: Mapping[str, float]) -> None:
    """``--cost MODEL=$``: a flat $ per request for a model, on every outcome of that model
    the file (or a price file) left without a cost. Never derived from anything else."""
    unknown = [m for m in costs if m not in result.models]
    if unknown:
        raise ImportFileError(f"{result.path}: --cost names model(s) not in the file: "
                              f"{', '.join(unknown)} (models: {', '.join(result.models)})")
    filled: dict[str, int] = {}
    for o in result.outcomes:
        if o.cost_usd is None and o.model in costs:
            o.cost_usd = float(costs[o.model])
            o.extra["cost_given"] = "per request (--cost)"
            filled[o.model] = filled.get(o.model, 0) + 1
    if filled:
        result.notes.append("costs given per request (--cost): " + ", ".join(
            f"{m} ${costs[m]:g} on {_count(n, 'outcome')}" for m, n in filled.items()))


def import_file(path: str | Path, fmt: str = "auto", prices: str | Path | None = None,
                output_tokens: int = 256, chars_per_token: float = 4.0,
                costs: Mapping[str, float] | None = None) -> ImportResult:
    """Read ``path`` as ``fmt`` (one of :data:`FORMATS`) and return its outcomes and skips.

    ``prices`` (JSON/YAML, see :func:`load_prices`) lets files without costs (LLMRouter, wide
    CSV) get *estimated* costs: ``ceil(len(prompt) / chars_per_token)`` input tokens plus
    ``output_tokens`` assumed output tokens, at the file's $/Mtok rates; the assumption is
    stated in ``notes`` and on each outcome (``extra["estimated"]``). ``costs`` gives a flat
    $ per request by model for outcomes still without a cost. Nothing else sets a cost: a file
    without prices yields null costs (replay then works on the share of strong-model calls).
    Raises :class:`ImportFileError` when the file as a whole can't be read as that format.
    """
    p = Path(path)
    if fmt not in FORMATS:
        raise ImportFileError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if output_tokens < 0:
        raise ValueError(f"output_tokens must be >= 0, got {output_tokens}")
    if not chars_per_token > 0:
        raise ValueError(f"chars_per_token must be > 0, got {chars_per_token}")
    if not p.is_file():
        raise ImportFileError(f"{p}: no such file")
    costing = None
    if prices is not None:
        costing = _Costing(load_prices(prices), Path(prices), output_tokens, chars_per_token)
    notes: list[str] = []
    if fmt == "auto":
        fmt, why = detect_format(p)
        notes.append(f"detected format {fmt}: {why}")
    result = ImportResult(path=p, format=fmt, notes=notes)
    _READERS[fmt](p, result, costing)
    if costing is not None:
        result.notes += costing.notes()
    if costs:
        _apply_given_costs(result, costs)
    return result
