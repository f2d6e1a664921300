"""The plots of docs/benchmarks.md, drawn from bench/results/*.json.

Each function takes a suite's results (and the targets it draws as lines) and returns a
matplotlib figure; bench/report.py saves it as docs/bench-{suite}.png.
"""

from __future__ import annotations

from typing import Any

from bench.report_answers import KINDS
from bench.report_batching import KIND_NAMES, kinds


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def queue(queue: dict[str, Any], targets: dict[str, Any]) -> Any:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"floor": ("bare Celery chain", "tab:gray"), "audio": ("spoken question", "tab:blue"),
              "text": ("typed question", "tab:orange")}  # fmt: skip
    levels_of = queue["params"]["levels"]
    for kind, (label, colour) in styles.items():
        levels = queue[kind]["levels"]
        xs = [lv["clients"] for lv in levels]
        left.plot(
            xs, [lv["done_ms"]["p50"] for lv in levels], "o-", color=colour, label=f"{label} p50"
        )
        left.plot(
            xs,
            [lv["done_ms"]["p99"] for lv in levels],
            "o--",
            color=colour,
            label=f"{label} p99",
            alpha=0.6,
        )
        right.plot(xs, [lv["jobs_per_s"] for lv in levels], "o-", color=colour, label=label)
    best_floor = max(lv["jobs_per_s"] for lv in queue["floor"]["levels"])
    share = targets["queue_throughput_share_of_floor"]
    right.axhline(
        share * best_floor, color="tab:red", ls=":", label=f"target: {share}\u00d7 the floor's best"
    )
    left.axhline(targets["queue_p50_ms"], color="tab:red", ls=":", label="target p50 (1 client)")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels_of, [str(x) for x in levels_of])
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("POST → done (ms)")
    left.set_title("Latency to done")
    right.set_ylabel("jobs (chains) per second")
    right.set_title("Throughput")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def e2e(e2e: dict[str, Any], targets: dict[str, Any]) -> Any:
    plt = pyplot()
    clips = e2e["clips"]
    fig, ax = plt.subplots(figsize=(10, 4))
    xs = range(len(clips))
    width = 0.38
    ax.bar(
        [x - width / 2 for x in xs],
        [c["direct"]["seconds"] for c in clips],
        width,
        label="direct (one process)",
        color="tab:gray",
    )
    ax.bar(
        [x + width / 2 for x in xs],
        [c["service"]["seconds"] for c in clips],
        width,
        label="through audiochat",
        color="tab:blue",
    )
    ax.set_xticks(list(xs), [f"{c['clip']}\n{c['audio_seconds']:.0f} s" for c in clips], fontsize=7)
    ax.set_ylabel("seconds (transcribe + answer)")
    ax.set_title("Embedded models: direct vs through the queue")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def fanout(fanout: dict[str, Any], targets: dict[str, Any]) -> Any:
    plt = pyplot()
    levels = fanout["levels"]
    xs = [lv["clients"] for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(xs, [lv["latency_ms"]["p50"] for lv in levels], "o-", label="p50")
    left.plot(xs, [lv["latency_ms"]["p99"] for lv in levels], "o--", label="p99")
    left.axhline(targets["fanout_p99_ms"], color="tab:red", ls=":", label="target p99")
    left.set_ylabel("publish → receipt (ms)")
    left.set_title("Latency of a live event")
    right.plot(xs, [lv["gateway_rss_mb"]["peak"] for lv in levels], "o-", label="gateway RSS (MB)")
    right.axhline(targets["fanout_rss_mb"], color="tab:red", ls=":", label="target RSS")
    conns = right.twinx()
    conns.plot(
        xs,
        [lv["gateway_redis_connections"]["connected"] for lv in levels],
        "s--",
        color="tab:green",
        label="gateway → Redis connections",
    )
    conns.set_ylabel("connections to Redis")
    conns.set_ylim(
        0, max(40, *[lv["gateway_redis_connections"]["connected"] for lv in levels]) * 1.2
    )
    right.set_ylabel("MB")
    right.set_title("Gateway memory and Redis connections")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("SSE clients on one gateway process")
        ax.grid(alpha=0.3)
    left.set_yscale("log")
    left.legend(fontsize=8)
    handles = right.get_legend_handles_labels()
    extra = conns.get_legend_handles_labels()
    right.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def upload(upload: dict[str, Any], targets: dict[str, Any]) -> Any:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    stores = list(upload["stores"])
    sizes = sorted({int(s) for st in upload["stores"].values() for s in st})
    width = 0.38
    for i, store in enumerate(stores):
        offs = [x + (i - 0.5) * width for x in range(len(sizes))]
        data = upload["stores"][store]
        left.bar(offs, [data[str(s)]["rss_growth_mb_max"] for s in sizes], width, label=store)
        right.bar(offs, [data[str(s)]["mb_per_s_best"] for s in sizes], width, label=store)
    for ax in (left, right):
        ax.set_xticks(range(len(sizes)), [f"{s} MB" for s in sizes])
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="store")
    left.set_ylabel("gateway RSS growth during the upload (MB)")
    left.set_title("Peak memory")
    right.set_ylabel("MB/s (POST → 202)")
    right.set_title("Throughput")
    fig.tight_layout()
    return fig


def answers(answers: dict[str, Any], targets: dict[str, Any]) -> Any:
    plt = pyplot()
    configs = answers["configs"]
    kinds_here = [k for k in ("typed", "spoken", "clip") if k in configs["after"]["summary"]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    metrics = (("match_rate", "exact match", 100), ("words_mean", "words per answer", 1),
               ("seconds_p50", "seconds per job (p50)", 1))  # fmt: skip
    width = 0.38
    for ax, (key, title, scale) in zip(axes, metrics, strict=True):
        for offset, (label, colour) in ((-width / 2, ("before", "tab:gray")),
                                        (width / 2, ("after", "tab:blue"))):  # fmt: skip
            values = [configs[label]["summary"][k][key] * scale for k in kinds_here]
            xs = [x + offset for x in range(len(kinds_here))]
            ax.bar(xs, values, width, label=label, color=colour)
        ax.set_xticks(range(len(kinds_here)), [KINDS[k] for k in kinds_here], fontsize=8)
        ax.set_title(title + (" (%)" if scale == 100 else ""))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return fig


def batching(batching: dict[str, Any], targets: dict[str, Any]) -> Any:
    """Jobs per second against clients, a line per backend and kind; the same clients on a
    worker that runs one stage at a time as a cross; the target as a bar at its clients."""
    plt = pyplot()
    backends = list(batching["backends"])
    fig, axes = plt.subplots(1, len(backends), figsize=(5.5 * len(backends), 4), squeeze=False)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
    base_clients, wanted = targets["batching_base_clients"], targets["batching_speedup"]
    for ax, backend in zip(axes[0], backends, strict=True):
        run = batching["backends"][backend]
        for colour, kind in zip(colours, kinds(batching), strict=False):
            levels = [lv for lv in run["levels"] if lv["kind"] == kind]
            xs = [lv["clients"] for lv in levels]
            name = KIND_NAMES.get(kind, kind)
            ax.plot(xs, [lv["jobs_per_s"] for lv in levels], "o-", color=colour, label=name)
            base = next((lv for lv in levels if lv["clients"] == base_clients), None)
            if base:
                ax.plot(
                    [targets["batching_clients"]],
                    [base["jobs_per_s"] * wanted],
                    "_",
                    color=colour,
                    markersize=18,
                    mew=2,
                    label=f"target for {name}: {wanted:g}\u00d7 its rate at {base_clients}",
                )
            for alone in (lv for lv in run["one_at_a_time"] if lv["kind"] == kind):
                ax.plot([alone["clients"]], [alone["jobs_per_s"]], "x", color=colour, ms=9,
                        label=f"{name}, one stage at a time")  # fmt: skip
        ax.set_xscale("log", base=2)
        ticks = batching["params"]["levels"]
        ax.set_xticks(ticks, [str(x) for x in ticks])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("jobs per second")
        ax.set_ylim(bottom=0)
        ax.set_title(backend)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
