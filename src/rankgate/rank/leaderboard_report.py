"""The ranking as pictures and one self-contained HTML file (plots embedded as PNG data URIs).

Plots: the Pareto plot (cost per 1k requests vs accuracy, with 95% interval bars, frontier
joined), per-category accuracy with intervals, and the reliability diagram per model.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any


def _plt():  # noqa: ANN202 - matplotlib.pyplot, imported lazily with a file-only backend
    from rankgate.extras import require

    require("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def pareto_plot(board: dict[str, Any]) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    models = [e for e in board["models"] if e["accuracy"] is not None
              and e["cost_usd_per_1k"] is not None]
    for e in models:
        on = e["model"] in board["pareto"]
        ax.errorbar(e["cost_usd_per_1k"], e["accuracy"],
                    yerr=[[e["accuracy"] - e["ci_low"]], [e["ci_high"] - e["accuracy"]]],
                    fmt="o" if on else "s", color="C0" if on else "C7", capsize=4)
        ax.annotate(e["model"], (e["cost_usd_per_1k"], e["accuracy"]),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    front = [e for m in board["pareto"] for e in models if e["model"] == m]
    if len(front) > 1:
        ax.plot([e["cost_usd_per_1k"] for e in front], [e["accuracy"] for e in front], "--",
                color="C0", alpha=0.6, label="Pareto frontier")
        ax.legend(loc="lower right", fontsize=8)
    if models and min(e["cost_usd_per_1k"] for e in models) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("cost, $ per 1,000 requests")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title("cost vs accuracy")
    ax.grid(alpha=0.3)
    return _png(fig)


def category_plot(board: dict[str, Any]) -> bytes:
    plt = _plt()
    cats = sorted({c for e in board["models"] for c in e["categories"]})
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(cats) + 2), 4.2))
    width = 0.8 / max(1, len(board["models"]))
    for k, e in enumerate(board["models"]):
        xs, ys, lo, hi = [], [], [], []
        for i, c in enumerate(cats):
            if c in e["categories"]:
                v = e["categories"][c]
                xs.append(i + k * width)
                ys.append(v["accuracy"])
                lo.append(v["accuracy"] - v["ci_low"])
                hi.append(v["ci_high"] - v["accuracy"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=e["model"])
    ax.set_xticks([i + width * (len(board["models"]) - 1) / 2 for i in range(len(cats))])
    ax.set_xticklabels(cats, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.legend(fontsize=8)
    ax.set_title("accuracy per category")
    return _png(fig)


def reliability_plot(board: dict[str, Any]) -> bytes | None:
    with_rel = [e for e in board["models"] if e.get("reliability")]
    if not with_rel:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for e in with_rel:
        b = e["reliability"]
        ax.plot([x["conf"] for x in b], [x["acc"] for x in b], "o-",
                label=f"{e['model']} (ECE {e['ece']:.3f})")
    ax.set_xlabel("confidence (mean of bin)")
    ax.set_ylabel("accuracy (bin)")
    ax.set_title("reliability (equal-mass bins)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def plots(board: dict[str, Any]) -> dict[str, bytes]:
    out = {"pareto.png": pareto_plot(board), "categories.png": category_plot(board)}
    rel = reliability_plot(board)
    if rel is not None:
        out["reliability.png"] = rel
    return out


def write_pngs(board: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in plots(board).items():
        (directory / name).write_bytes(data)
        paths.append(directory / name)
    return paths


def _fmt(v: Any, pct: bool = False, digits: int = 3) -> str:
    if v is None:
        return "—"
    return f"{v:.1%}" if pct else f"{v:.{digits}g}"


def _made_of(board: dict[str, Any]) -> str:
    """What the ranking was built from (outcome kinds, votes by source), how far its judges
    agree with gold, and the drift check — the HTML says what the terminal says."""
    e = html.escape
    parts = []
    prov = board.get("provenance") or {}
    if prov.get("summary"):
        parts.append(f"<p><b>Built from:</b> {e(str(prov['summary']))}</p>")
    for note in board.get("judges") or []:
        parts.append(f"<p><b>Judge:</b> {e(str(note))}</p>")
    drift = board.get("drift")
    if drift is not None:
        from rankgate.rank.drift import Check, describe

        found = [describe(Check(**c)) for c in drift.get("drifts", [])]
        head = (f"<h2>Drift</h2><p>Latest {drift['window_s'] / 3600:g} h against the "
                f"{drift['window_s'] / 3600:g} h before: {len(drift.get('checks', []))} "
                f"check(s), {len(found)} drift(s); {len(drift.get('too_few', []))} model × "
                "metric pair(s) with too few outcomes to test.</p>")
        parts.append(head + ("<ul>" + "".join(f"<li>{e(f)}</li>" for f in found) + "</ul>"
                             if found else ""))
    return "\n".join(parts)


def _per_category(row: dict[str, Any]) -> str:
    return "; ".join(f"{c} {v['diff']:+.0%} (n={v['n']})" for c, v in row["categories"].items())


def _variants_html(board: dict[str, Any]) -> str:
    """Each variant against its base, paired: difference, ratios, frontier, categories."""
    rows = board.get("variants") or []
    if not rows:
        return ""
    e = html.escape
    body = "".join(
        f"<tr><td>{e(r['variant'])}</td><td>{e(r['base'])}</td><td>{r['n']}</td>"
        f"<td>{r['diff']:+.1%} [{r['ci_low']:+.1%}, {r['ci_high']:+.1%}]</td>"
        f"<td>{_fmt(r['cost_ratio'])}</td><td>{_fmt(r['latency_ratio'])}</td>"
        f"<td>{'★ ' + e(', '.join(r['displaces'])) if r['moves_frontier'] else ''}</td>"
        f"<td>{e(_per_category(r))}</td></tr>" for r in rows)
    return ("<h2>Variants vs their base (paired)</h2><table><tr><th>variant</th><th>base</th>"
            "<th>n</th><th>difference [95% CI]</th><th>cost ×</th><th>latency ×</th>"
            f"<th>frontier</th><th>per category</th></tr>{body}</table>")


def write_html(board: dict[str, Any], path: Path, title: str = "rankgate leaderboard") -> None:
    e = html.escape
    rows = []
    for m in board["models"]:
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                e(m["model"]), m["n"], _fmt(m["accuracy"], True),
                f"{_fmt(m['ci_low'], True)} – {_fmt(m['ci_high'], True)}",
                _fmt(m["cost_usd_per_1k"]), _fmt(m["latency_p50_s"]), _fmt(m["latency_p95_s"]),
                _fmt(m["ttft_p50_s"]), _fmt(m["tokens_per_s"]), _fmt(m["ece"]),
                (f"{m['bt_rating']:.0f} [{m['bt_low']:.0f}, {m['bt_high']:.0f}]"
                 if m["bt_rating"] is not None else "—"),
                "★" if m["model"] in board["pareto"] else "",
            )) + "</tr>")
    pair_rows = "".join(
        f"<tr><td>{e(p['a'])} − {e(p['b'])}</td><td>{p['n']}</td><td>{p['diff']:+.1%}</td>"
        f"<td>{p['ci_low']:+.1%} – {p['ci_high']:+.1%}</td><td>{e(p['test'])}</td>"
        f"<td>{p['p_holm']:.3g}</td></tr>" for p in board["pairwise"])
    imgs = "".join(
        f'<figure><img alt="{e(n)}" src="data:image/png;base64,'
        f'{base64.b64encode(d).decode()}"/></figure>' for n, d in plots(board).items())
    made_of = _made_of(board) + _variants_html(board)
    warnings = "".join(f"<li>{e(m['model'])}: {e(w)}</li>" for m in board["models"]
                       for w in m["warnings"] + ([m["ece_warning"]] if m["ece_warning"] else []))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
font-size:14px}}th{{background:#f4f4f4}}figure{{display:inline-block;margin:.5em}}
.rec{{background:#eef7ee;padding:1em;border-left:4px solid #3a3}}</style></head><body>
<h1>{e(title)}</h1><p>{board['n_items']} items. Accuracy with 95% intervals (Wilson for 0/1
scores, bootstrap otherwise); pairwise differences on shared items, Holm-adjusted.</p>
{made_of}<div class="rec"><b>Recommendation: {e(str(board['recommendation']['model']))}</b><br>
{e(board['recommendation']['reason'])}</div>
<table><tr><th>model</th><th>n</th><th>accuracy</th><th>95% CI</th><th>$ / 1k req</th>
<th>latency p50 s</th><th>p95 s</th><th>TTFT p50 s</th><th>tok/s</th><th>ECE</th>
<th>BT rating</th><th>Pareto</th></tr>{''.join(rows)}</table>
<h2>Pairwise (paired on shared items)</h2><table><tr><th>pair</th><th>n</th><th>diff</th>
<th>95% CI</th><th>test</th><th>p (Holm)</th></tr>{pair_rows}</table>
{'<h2>Warnings</h2><ul>' + warnings + '</ul>' if warnings else ''}
<h2>Plots</h2>{imgs}</body></html>"""
    path.write_text(doc, encoding="utf-8")
