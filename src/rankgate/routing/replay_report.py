"""The replay as a picture: every router's cost/quality curve against the baselines, and each
router's reliability diagram (predicted vs realised quality, before and after calibration)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any


def curves_png(report: dict[str, Any]) -> bytes:
    from rankgate.extras import require

    require("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    styles = {"random": ":", "zero": "--", "oracle": "-."}
    for name, r in report["routers"].items():
        pts = r["curve"]
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, styles.get(name, "-"), label=name, lw=2 if name not in styles else 1.2,
                drawstyle="steps-post" if name not in styles else "default")
    axis = report.get("axis") or {m: v["cost"] for m, v in report["models"].items()}
    for m, v in report["models"].items():
        ax.plot(axis[m], v["quality"], "ko")
        ax.annotate(m, (axis[m], v["quality"]), textcoords="offset points", xytext=(5, -10),
                    fontsize=7)
    ax.set_xlabel(axis_label(report))
    ax.set_ylabel("mean quality on held-out items")
    ax.set_title(f"routers vs baselines ({report['n_test']} test items)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def axis_label(report: dict[str, Any]) -> str:
    """What the replay's x axis measures: $, ranks, or the share of strong-model calls."""
    kind = report.get("cost_axis", "usd" if report["costs_known"] else "rank")
    if kind == "strong_share":
        return (f"share of calls to the strong model ({report['reference']['strong']}); "
                "no $ costs in the data")
    return "mean cost per request" + (" ($)" if kind == "usd" else " (rank units)")


def reliability_png(report: dict[str, Any]) -> bytes | None:
    """Per router, mean realised vs mean predicted quality in equal-mass bins (marker area ∝
    pairs in the bin), before (grey) and after (colour) calibration; None without data."""
    cal = {n: c for n, c in (report.get("calibration") or {}).items() if c["before"]["n"]}
    if not cal:
        return None
    from rankgate.extras import require

    require("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    k = len(cal)
    cols = min(k, 3)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), squeeze=False)
    for ax, (name, c) in zip(axes.flat, cal.items(), strict=False):
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        for key, style, colour in (("before", "o--", "0.6"), ("after", "o-", "C0")):
            r = c.get(key)
            if not r or not r["bins"]:
                continue
            xs = [b["conf"] for b in r["bins"]]
            ys = [b["acc"] for b in r["bins"]]
            ax.plot(xs, ys, style, color=colour, lw=1.5, ms=3,
                    label=f"{key}: ECE {r['ece']:.3f}")
            ax.scatter(xs, ys, s=[b["count"] for b in r["bins"]], color=colour, alpha=0.35)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name} ({c['before']['n']} pairs)", fontsize=9)
        ax.set_xlabel("predicted quality (bin mean)", fontsize=8)
        ax.set_ylabel("realised quality", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[k:]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_replay_pngs(report: dict[str, Any], directory: Path) -> list[Path]:
    """``curves.png`` and (with calibration data) ``reliability.png`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    out = [directory / "curves.png"]
    out[0].write_bytes(curves_png(report))
    rel = reliability_png(report)
    if rel is not None:
        out.append(directory / "reliability.png")
        out[1].write_bytes(rel)
    return out


def calibration_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per router: ECE before/after, the noise band of a calibrated predictor at this
    n (mean, 95% range) with the p-value of "as calibrated as that", n, warnings."""
    rows = []
    for name, c in (report.get("calibration") or {}).items():
        b, a = c["before"], c.get("after")
        kinds = sorted({v["kind"] for v in (c.get("maps") or {}).values()})
        served = a or b
        rows.append({"router": name, "n": b["n"], "n_items": b["n_items"],
                     "ece_before": b["ece"], "p_before": b["p_calibrated"],
                     "ece_after": None if a is None else a["ece"],
                     "p_after": None if a is None else a["p_calibrated"],
                     "floor": served["floor"], "floor_band": served["floor_band"],
                     "maps": ", ".join(kinds) or "—",
                     "per_bin": [int(x["count"]) for x in (a or b)["bins"]],
                     "warning": (a or b)["warning"], "note": c.get("note")})
    return rows


def guarantee_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (router, target, confidence) of the quality-guarantee replay: certified
    share, realised coverage with its 95% interval, the point policy's share reaching the
    target, and the guarantee's cost relative to the point-prediction policy. A router
    without a guarantee gives one row with its ``note``."""
    rows = []
    for name, g in (report.get("guarantee") or {}).items():
        if "rows" not in g:
            rows.append({"router": name, "note": g.get("note")})
            continue
        rows.extend({"router": name, **r} for r in g["rows"])
    return rows


def paired_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per router: AIQ and APGR minus the reference router's (``paired_vs``), paired
    bootstrap 95% intervals, and whether the AIQ interval excludes zero."""
    rows = []
    for name, p in (report.get("paired") or {}).items():
        ci = p["aiq"]["ci"]
        rows.append({"router": name, "vs": report.get("paired_vs"),
                     "aiq_diff": p["aiq"]["diff"], "aiq_ci": ci,
                     "apgr_diff": p["apgr"]["diff"], "apgr_ci": p["apgr"]["ci"],
                     "aiq_better": bool(ci and ci[0] > 0), "aiq_worse": bool(ci and ci[1] < 0)})
    return rows


def write_replay_html(report: dict[str, Any], path: Path) -> None:
    e = html.escape

    def f(v: Any, spec: str = "{:.3f}") -> str:
        return "—" if v is None else spec.format(v)

    rows = "".join(
        f"<tr><td>{e(n)}</td><td>{f(r['apgr'])}</td><td>{f(r['cpt50'])}</td>"
        f"<td>{f(r['aiq'])}</td><td>{f(r['quality_at_95pct_best'])}</td>"
        f"<td>{f(r['cost_at_95pct_best'], '{:.3g}')}</td>"
        f"<td>{f(r['savings_at_95pct_best'], '{:.0%}')}</td></tr>"
        for n, r in report["routers"].items())
    img = base64.b64encode(curves_png(report)).decode()

    def band(v: list[float] | None) -> str:
        return "" if not v else f" [{v[0]:.3f}, {v[1]:.3f}]"

    def p(v: float | None) -> str:
        return "" if v is None else f" (p={v:.2f})"

    cal_rows = "".join(
        f"<tr><td>{e(r['router'])}</td><td>{f(r['ece_before'])}{p(r['p_before'])}</td>"
        f"<td>{f(r['ece_after'])}{p(r['p_after'])}</td>"
        f"<td>{f(r['floor'])}{band(r['floor_band'])}</td>"
        f"<td>{r['n']} ({r['n_items']} items)</td><td>{e(str(r['per_bin']))}</td>"
        f"<td>{e(r['maps'])}</td><td>{e(r['warning'] or r['note'] or '')}</td></tr>"
        for r in calibration_rows(report))
    rel = reliability_png(report)
    cal_html = "" if not cal_rows else (
        "<h2>Calibration of predicted quality</h2><p>ECE over every (held-out item, model) "
        "pair, 10 equal-mass bins. Sampling noise alone gives a perfectly calibrated predictor "
        "an ECE of about the floor at this n (mean [95% range] over simulated draws); p is the "
        "share of those draws at or above the measured ECE (small p: real miscalibration)."
        "</p><table><tr><th>router</th><th>ECE before</th><th>ECE after</th>"
        "<th>calibrated floor</th>"
        f"<th>pairs</th><th>pairs per bin</th><th>maps</th><th>note</th></tr>{cal_rows}</table>"
        + ("" if rel is None else '<img alt="reliability diagrams" src="data:image/png;base64,'
           + base64.b64encode(rel).decode() + '"/>'))
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>rankgate replay</title><style>body{{font-family:system-ui,sans-serif;margin:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px}}table{{border-collapse:collapse}}</style></head>
<body><h1>Router replay</h1><p>{report['n_train']} training items, {report['n_test']} held-out
items; x axis: {e(axis_label(report))}.</p>
<table><tr><th>router</th><th>APGR</th><th>CPT(50%)</th><th>AIQ</th><th>quality @95% best</th>
<th>cost @95% best</th><th>savings @95% best</th></tr>{rows}</table>
<img alt="cost/quality curves" src="data:image/png;base64,{img}"/>{cal_html}
{_guarantee_html(report)}</body></html>""",
                    encoding="utf-8")


def _guarantee_html(report: dict[str, Any]) -> str:
    """The paired comparison and guarantee-coverage tables of the HTML report ("" if none)."""
    e = html.escape

    def f(v: Any, spec: str = "{:.3f}") -> str:
        return "—" if v is None else spec.format(v)

    def ci(v: list[float] | None, spec: str = "{:.3f}") -> str:
        return "" if not v else f" [{spec.format(v[0])}, {spec.format(v[1])}]"

    out = ""
    pr = paired_rows(report)
    if pr:
        out += (f"<h2>Paired against {e(str(report.get('paired_vs')))}</h2><table><tr>"
                "<th>router</th><th>ΔAIQ [95%]</th><th>ΔAPGR [95%]</th></tr>" + "".join(
                    f"<tr><td>{e(r['router'])}</td><td>{f(r['aiq_diff'], '{:+.4f}')}"
                    f"{ci(r['aiq_ci'], '{:+.4f}')}</td><td>{f(r['apgr_diff'], '{:+.4f}')}"
                    f"{ci(r['apgr_ci'], '{:+.4f}')}</td></tr>" for r in pr) + "</table>")
    gr = guarantee_rows(report)
    if gr:
        out += ("<h2>Quality guarantee (min_quality + confidence)</h2><p>coverage = share of "
                "certified held-out requests whose realised quality reached the target "
                "(Clopper–Pearson 95%); uncertified requests go to the best model and are "
                "flagged; cost ratio = guarantee policy ÷ point-prediction policy.</p><table>"
                "<tr><th>router</th><th>target</th><th>confidence</th><th>certified</th>"
                "<th>coverage</th><th>point policy reaching target</th><th>cost ratio</th>"
                "</tr>" + "".join(
                    f"<tr><td>{e(r['router'])}</td><td colspan=6>{e(str(r['note']))}</td></tr>"
                    if "note" in r else
                    f"<tr><td>{e(r['router'])}</td><td>{r['target']}</td>"
                    f"<td>{r['confidence']}</td><td>{r['certified_share']:.0%}</td>"
                    f"<td>{f(r['coverage'])}{ci(r['coverage_ci'])}</td>"
                    f"<td>{r['point_coverage']:.3f}</td><td>{f(r['cost_ratio'], '{:.2f}')}</td>"
                    "</tr>" for r in gr) + "</table>")
    return out


def _ci_text(v: list[float] | None, spec: str) -> str:
    return "" if not v else f" [{spec.format(v[0])}, {spec.format(v[1])}]"


def paired_table(report: dict[str, Any]) -> Any:
    """The paired comparison as a terminal table (what ``--json``/``--html`` carry as
    ``paired``): each router's AIQ and APGR minus the reference router's, with paired
    bootstrap 95% intervals and a verdict on AIQ. None when the replay made no pairs."""
    rows = paired_rows(report)
    if not rows:
        return None
    from rich.table import Table

    t = Table(title=f"paired against {report.get('paired_vs')} — same held-out items, paired "
              "bootstrap 95% intervals")
    for col in ("router", "ΔAIQ [95%]", "ΔAPGR [95%]", "AIQ verdict"):
        t.add_column(col)
    for r in rows:
        verdict = ("better" if r["aiq_better"] else "worse" if r["aiq_worse"] else
                   "no difference shown" if r["aiq_ci"] else "no interval (--n-boot 0)")
        t.add_row(r["router"],
                  ("—" if r["aiq_diff"] is None else f"{r['aiq_diff']:+.4f}")
                  + _ci_text(r["aiq_ci"], "{:+.4f}"),
                  ("—" if r["apgr_diff"] is None else f"{r['apgr_diff']:+.4f}")
                  + _ci_text(r["apgr_ci"], "{:+.4f}"), verdict)
    return t


def guarantee_table(report: dict[str, Any]) -> Any:
    """The quality-guarantee coverage as a terminal table (``guarantee`` in ``--json``): per
    router, target and confidence, the certified share, the realised coverage with its
    Clopper–Pearson 95% interval, whether it keeps the promise, the point policy's share
    reaching the target and the cost ratio. None when no router was replayed for it."""
    rows = [r for r in guarantee_rows(report) if "note" not in r]
    if not rows:
        return None
    from rich.table import Table

    t = Table(title="quality guarantee (min_quality + confidence) — coverage = share of "
              "certified held-out requests whose realised quality reached the target; cost "
              "ratio = guarantee ÷ point-prediction policy")
    for col in ("router", "target", "confidence", "certified", "coverage [95%]", "promise",
                "point policy reaching", "cost ratio"):
        t.add_column(col)
    for r in rows:
        cov, band, kept = r["coverage"], r["coverage_ci"], r.get("meets_promise")
        kept = "—" if kept is None else "kept" if kept else "broken"
        t.add_row(r["router"], f"{r['target']:g}", f"{r['confidence']:g}",
                  f"{r['certified_share']:.0%}",
                  ("—" if cov is None else f"{cov:.3f}") + _ci_text(band, "{:.3f}"), kept,
                  f"{r['point_coverage']:.3f}",
                  "—" if r["cost_ratio"] is None else f"{r['cost_ratio']:.2f}")
    return t


def print_replay_extras(console: Any, report: dict[str, Any]) -> None:
    """Print the paired and guarantee tables (and the notes of routers without a
    guarantee) after the replay's main table: the terminal shows what the JSON holds."""
    for table in (paired_table(report), guarantee_table(report)):
        if table is not None:
            console.print(table)
    for r in guarantee_rows(report):
        if r.get("note"):
            console.print(f"[yellow]note[/] {r['router']}: {r['note']}", highlight=False)
