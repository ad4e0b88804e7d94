"""``rankgate logs export``: production traffic out of the store, as a workload or as outcomes.

``--as workload`` turns logged request bodies (``serve --log-bodies``) into workload items that
``rankgate eval --workload F`` runs on the whole panel: ``{"id", "messages", "scorer": "judge",
"metadata": {"source_request", "source_model", ...}}`` — no ``target`` (production traffic has no
gold answer), so a judge grades them. ``--as outcomes`` writes the store's outcomes (feedback,
judge, ...) as outcomes JSONL for ``rank``/``route train`` on another machine.

An empty store or range is a one-line message and exit code 1 with nothing written; the file
is written whole or not at all (a temporary file renamed into place).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rankgate.store.exchange_store import Exchange

logs_app = typer.Typer(help="The gateway's logs in the store: export them as a workload or as "
                       "outcomes.", no_args_is_help=True)

KINDS = ("workload", "outcomes")


def _text_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]] | str:
    """The conversation as plain ``{role, content}`` messages (what a workload item holds), or
    why it cannot be one."""
    out = []
    for m in messages:
        if m.get("tool_calls") or m.get("function_call") or m.get("role") in ("tool",
                                                                              "function"):
            return "tool calls (a workload item is a plain text conversation)"
        content = m.get("content")
        if isinstance(content, list):
            if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
                return "non-text content (images, audio or files)"
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str) or not isinstance(m.get("role"), str):
            return "a message without text content"
        out.append({"role": m["role"], "content": content})
    return out or "no messages"


def workload_items(exchanges: list[Exchange]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One item per logged live request, and how many were skipped for what reason."""
    items: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()
    for x in exchanges:
        if x.role != "live" or x.request_id in seen:
            continue
        seen.add(x.request_id)
        messages = _text_messages(x.messages)
        if isinstance(messages, str):
            skipped[messages] = skipped.get(messages, 0) + 1
            continue
        meta: dict[str, Any] = {"source_request": x.request_id, "source_model": x.model,
                                "ts": x.ts}
        if x.router:
            meta["router"] = x.router
        if x.truncated:
            meta["truncated"] = True
        items.append({"id": x.request_id, "messages": messages, "scorer": "judge",
                      "metadata": meta})
    return items, skipped


def _write_atomically(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.writelines(line + b"\n" for line in lines)
    os.replace(tmp, path)


def _filters(since: str | None, until: str | None, key: str | None, model: str | None,
             category: str | None) -> str:
    parts = [f"since {since}" if since else "", f"until {until}" if until else "",
             f"key {key}" if key else "", f"model {model}" if model else "",
             f"category {category}" if category else ""]
    shown = ", ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


@logs_app.command("export")
def export(
    store: Annotated[str, typer.Option("--store", help="database URL or SQLite file")],
    as_: Annotated[str, typer.Option("--as", help="workload (logged requests, to evaluate "
                                     "the panel on) or outcomes (the store's outcomes)")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write")],
    since: Annotated[str | None, typer.Option(help="from: 7d, 12h, 30m or an ISO date")
                     ] = None,
    until: Annotated[str | None, typer.Option(help="before: 7d, 12h, 30m or an ISO date")
                     ] = None,
    key: Annotated[str | None, typer.Option(help="only this virtual key's requests (key id)")
                   ] = None,
    model: Annotated[str | None, typer.Option(help="workload: requests this model answered "
                                              "live; outcomes: this model's")] = None,
    category: Annotated[str | None, typer.Option(help="outcomes only: this category")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print what was written as JSON")
                        ] = False,
) -> None:
    """Write logged traffic as a workload (JSONL items for `rankgate eval --workload`) or the
    store's outcomes as outcomes JSONL."""
    import orjson

    from rankgate.cli_loop import console, fail, open_store, shown, since_ts

    if as_ not in KINDS:
        raise fail(f"--as must be one of {', '.join(KINDS)}, not {as_!r}")
    if as_ == "workload" and category is not None:
        raise fail("--category: logged requests carry no category; it filters --as outcomes")
    start, end = since_ts(since), since_ts(until, "--until")
    if start is not None and end is not None and start >= end:
        raise fail(f"empty time range: --since {since} is not before --until {until}")
    engine = open_store(store)
    where = _filters(since, until, key, model, category)
    try:
        if as_ == "workload":
            from rankgate.store.exchange_store import read_exchanges

            xs = read_exchanges(engine, since=start, until=end, key_id=key,
                                models=[model] if model else None, roles=["live"])
            items, skipped = workload_items(xs)
            why = "; ".join(f"{n} skipped: {reason}" for reason, n in skipped.items())
            if not items:
                raise fail(f"no logged request bodies in {shown(store)}{where}"
                           + (f" that a workload can hold ({why})" if why else
                              " (the gateway logs them with serve --log-bodies)")
                           + "; nothing written", 1)
            _write_atomically(out, [orjson.dumps(i) for i in items])
            if json_out:
                print(orjson.dumps({"as": as_, "out": str(out), "written": len(items),
                                    "skipped": skipped}).decode())
                return
            console.print(f"wrote {len(items)} workload item(s) (scorer judge, no target) → "
                          f"{out}" + (f"; {why}" if why else ""), highlight=False)
            console.print(f"evaluate the panel on them: rankgate eval --workload {out} "
                          "--judge MODEL", highlight=False)
        else:
            from rankgate.store.outcome_store import query_outcomes

            rows = query_outcomes(engine, since=start, until=end, key_id=key,
                                  models=[model] if model else None, category=category)
            if not rows:
                raise fail(f"no outcomes in {shown(store)}{where}; nothing written", 1)
            _write_atomically(out, [orjson.dumps(o.to_json()) for _, o in rows])
            kinds: dict[str, int] = {}
            for _, o in rows:
                k = (o.source or "unlabelled").split(":", 1)[0]
                kinds[k] = kinds.get(k, 0) + 1
            by = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda t: -t[1]))
            if json_out:
                print(orjson.dumps({"as": as_, "out": str(out), "written": len(rows),
                                    "by_kind": kinds}).decode())
                return
            console.print(f"wrote {len(rows)} outcome(s) ({by}) → {out}", highlight=False)
    finally:
        engine.dispose()
