"""The replay as a picture: every router's cost/quality curve against the baselines."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any


def curves_png(report: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
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
    for m, v in report["models"].items():
        ax.plot(v["cost"], v["quality"], "ko")
        ax.annotate(m, (v["cost"], v["quality"]), textcoords="offset points", xytext=(5, -10),
                    fontsize=7)
    ax.set_xlabel("mean cost per request" + ("" if report["costs_known"] else " (rank units)"))
    ax.set_ylabel("mean quality on held-out items")
    ax.set_title(f"routers vs baselines ({report['n_test']} test items)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


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
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>rankgate replay</title><style>body{{font-family:system-ui,sans-serif;margin:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px}}table{{border-collapse:collapse}}</style></head>
<body><h1>Router replay</h1><p>{report['n_train']} training items, {report['n_test']} held-out
items{'' if report['costs_known'] else ' — costs are model ranks (no costs in the data)'}.</p>
<table><tr><th>router</th><th>APGR</th><th>CPT(50%)</th><th>AIQ</th><th>quality @95% best</th>
<th>cost @95% best</th><th>savings @95% best</th></tr>{rows}</table>
<img alt="cost/quality curves" src="data:image/png;base64,{img}"/></body></html>""",
                    encoding="utf-8")
