"""Plot ``bench/scale.py`` results against log2(n) and the live Mainline DHT (docs/scale.png).

    python bench/plot_scale.py results.jsonl [more.jsonl ...] [--out docs/scale.png]

Left: messages sent per FIND_NODE lookup (no loss; 1 % and 10 % dashed) against log2(n), with a least-squares
line in log2(n) extrapolated to 20 M nodes (Wang & Kangasharju 2013: 15-27 M Mainline nodes a day).
Right: round trips on a lookup's critical path against log2(n), the same fit, and what that means in
time at the live network's size for a 100-200 ms Internet round trip, next to Jimenez et al. 2011
(median lookup 100-200 ms with their modified client; most unmodified lookups under a second but not
consistently). Needs the ``bench`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LIVE_NODES = 20e6


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", default="docs/scale.png")
    args = ap.parse_args()
    rows = []
    for name in args.files:
        with open(name) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    x_live = math.log2(LIVE_NODES)
    colors = {"mainline": "tab:blue", "hyper": "tab:orange", "mainline oracle": "tab:green"}
    names = {
        "mainline": "Mainline (K=8)",
        "hyper": "HyperDHT (K=20)",
        "mainline oracle": "Mainline, tables by construction",
    }
    for series in colors:
        profile, _, build = series.partition(" ")
        build = build or "bootstrap"
        rs = sorted(
            (r for r in rows if r["profile"] == profile and r.get("build", "bootstrap") == build),
            key=lambda r: r["nodes"],
        )
        if not rs:
            continue
        xs = [math.log2(r["nodes"]) for r in rs]
        for loss, style in ((0.0, "-o"), (0.01, "--"), (0.1, ":")):
            if not all(any(x["loss"] == loss for x in r["loss"]) for r in rs):
                continue
            msgs = [next(x for x in r["loss"] if x["loss"] == loss)["messages_mean"] for r in rs]
            rts = [next(x for x in r["loss"] if x["loss"] == loss)["rounds_mean"] for r in rs]
            ax1.plot(xs, msgs, style, color=colors[series], label=f"{names[series]}, loss {loss:.0%}")
            if loss == 0.0:
                ax2.plot(xs, rts, style, color=colors[series], label=f"{names[series]} (mean)")
                if len(xs) >= 2:
                    for ax, ys in ((ax1, msgs), (ax2, rts)):
                        a, b = fit(xs, ys)
                        ax.plot(
                            [xs[0], x_live], [a + b * xs[0], a + b * x_live], color=colors[series], alpha=0.35
                        )
                        y = a + b * x_live
                        text = f"{y:.0f}" if ax is ax1 else f"{y:.1f} RTT = {y * 0.1:.1f}-{y * 0.2:.1f} s"
                        ax.annotate(
                            text, (x_live, y), color=colors[series], fontsize=8, ha="right", va="bottom"
                        )
    lo, hi = 9.5, x_live + 0.5
    for ax in (ax1, ax2):
        ax.axvline(x_live, color="grey", lw=0.8)
        ax.text(
            x_live - 0.1,
            sum(ax.get_ylim()) / 2,
            "20 M nodes\n(Wang & Kangasharju 2013)",
            ha="right",
            va="center",
            fontsize=8,
            color="grey",
        )
        ax.set_xlim(lo, hi)
        ax.set_xlabel("log2(n)")
        ax.grid(alpha=0.3)
    ax2.axhspan(
        1.0,
        2.0,
        color="tab:green",
        alpha=0.12,
        label="Jimenez et al. 2011: median 100-200 ms = 1-2 RTT of 100 ms (modified client)",
    )
    ax1.set_ylabel("messages sent per lookup")
    ax2.set_ylabel("round trips per lookup (no loss)")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.suptitle(
        "FIND_NODE lookups in simulated networks (bench/scale.py); lines: fit in log2(n) to 20 M nodes"
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
