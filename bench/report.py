"""Writes docs/benchmarks.md and docs/bench-*.png from bench/results/*.json.

Every number in the document comes from the results files; run `python -m bench.report` to
regenerate it after a run (`make bench` does). Prose here names no number of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, RESULTS_DIR, log
from bench.report_answers import answers_section

DOCS = REPO_ROOT / "docs"
DOC = DOCS / "benchmarks.md"

# The targets of issue 7, on 2 cores.
QUEUE_P50_MS = 15.0
QUEUE_P99_MS = 60.0
QUEUE_THROUGHPUT_SHARE = 0.6
E2E_RATIO = 1.10
FANOUT_P99_MS = 1000.0
FANOUT_RSS_MB = 500.0
# "Does not grow with the file size": the 100 MB upload's growth within this of the 10 MB's.
UPLOAD_FLAT_MB = 16.0


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _median(values: list[float]) -> float:
    from bench.stats import percentile

    return percentile(values, 50) or 0.0


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows
    ]
    return "\n".join(lines)


def _verdict(met: bool | None) -> str:
    return "\u2013" if met is None else ("**met**" if met else "**missed**")


def _by(measured: float, target: float, lower_is_better: bool = True) -> str:
    """How far a measurement is from its target, as a factor."""
    if measured is None or target in (None, 0):
        return "\u2013"
    factor = measured / target if lower_is_better else target / measured if measured else None
    if factor is None:
        return "\u2013"
    if factor <= 1:
        return f"within ({factor:.2f}\u00d7 of the limit)"
    if not lower_is_better:
        return f"short by {factor:.2f}\u00d7"
    return f"{factor:.2f}\u00d7 the limit"


# --- plots ------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_queue(queue: dict[str, Any]) -> str:
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"floor": ("bare Celery chain", "tab:gray"), "audio": ("spoken question", "tab:blue"),
              "text": ("typed question", "tab:orange")}  # fmt: skip
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
    right.axhline(
        QUEUE_THROUGHPUT_SHARE * best_floor,
        color="tab:red",
        ls=":",
        label=f"target: {QUEUE_THROUGHPUT_SHARE}\u00d7 the floor's best",
    )
    left.axhline(QUEUE_P50_MS, color="tab:red", ls=":", label="target p50 (1 client)")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 8, 32], ["1", "8", "32"])
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
    return _save(fig, "bench-queue.png")


def _plot_e2e(e2e: dict[str, Any]) -> str:
    plt = _plt()
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
    return _save(fig, "bench-e2e.png")


def _plot_fanout(fanout: dict[str, Any]) -> str:
    plt = _plt()
    levels = fanout["levels"]
    xs = [lv["clients"] for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(xs, [lv["latency_ms"]["p50"] for lv in levels], "o-", label="p50")
    left.plot(xs, [lv["latency_ms"]["p99"] for lv in levels], "o--", label="p99")
    left.axhline(FANOUT_P99_MS, color="tab:red", ls=":", label="target p99")
    left.set_ylabel("publish → receipt (ms)")
    left.set_title("Latency of a live event")
    right.plot(xs, [lv["gateway_rss_mb"]["peak"] for lv in levels], "o-", label="gateway RSS (MB)")
    right.axhline(FANOUT_RSS_MB, color="tab:red", ls=":", label="target RSS")
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
    return _save(fig, "bench-fanout.png")


def _plot_upload(upload: dict[str, Any]) -> str:
    plt = _plt()
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
    return _save(fig, "bench-upload.png")


def _save(fig: Any, name: str) -> str:
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / name, dpi=110)
    _plt().close(fig)
    return name


# --- sections ---------------------------------------------------------------------------


def _profile_tables(title: str, summary: dict[str, Any] | None, top: int = 10) -> str:
    if not summary:
        return ""
    if "error" in summary:
        return f"*{title}: no profile ({summary['error']}).*\n"
    own = [[f"`{f['frame']}`", f"{100 * f['share']:.1f} %"] for f in summary["inclusive_own"]]
    lib = [[f"`{f['frame']}`", f"{100 * f['share']:.1f} %"] for f in summary["self"]]
    return (
        f"**{title}** ({_fmt(summary['samples'])} samples of the thread holding the GIL)\n\n"
        "audiochat's own functions, inclusive (time in them and what they call):\n\n"
        + _table(["function", "share"], own[:top])
        + "\n\nWhere the samples land (self time, any code):\n\n"
        + _table(["function", "share"], lib[:top])
        + "\n"
    )


def _level(levels: list[dict[str, Any]], clients: int) -> dict[str, Any] | None:
    return next((lv for lv in levels if lv["clients"] == clients), None)


def _queue_section(queue: dict[str, Any], targets: list[list[str]]) -> str:
    rows = []
    names = {"floor": "bare Celery chain", "audio": "spoken question (2 stages)",
             "text": "typed question (1 stage)"}  # fmt: skip
    for kind, name in names.items():
        for lv in queue[kind]["levels"]:
            rows.append(
                [
                    name,
                    lv["clients"],
                    lv["jobs"],
                    lv["errors"],
                    lv["jobs_per_s"],
                    lv["first_event_ms"]["p50"],
                    lv["first_event_ms"]["p99"],
                    lv["done_ms"]["p50"],
                    lv["done_ms"]["p99"],
                ]
            )
    one = _level(queue["audio"]["levels"], 1)
    floor_best = max(lv["jobs_per_s"] for lv in queue["floor"]["levels"])
    audio_best = max(lv["jobs_per_s"] for lv in queue["audio"]["levels"])
    text_best = max(lv["jobs_per_s"] for lv in queue["text"]["levels"])
    if one:
        p50, p99 = one["done_ms"]["p50"], one["done_ms"]["p99"]
        targets.append(
            [
                "queue: p50 POST → done, 1 client (spoken)",
                f"≤ {QUEUE_P50_MS:g} ms",
                f"{_fmt(p50)} ms",
                _verdict(p50 <= QUEUE_P50_MS),
                _by(p50, QUEUE_P50_MS),
            ]
        )
        targets.append(
            [
                "queue: p99 POST → done, 1 client (spoken)",
                f"≤ {QUEUE_P99_MS:g} ms",
                f"{_fmt(p99)} ms",
                _verdict(p99 <= QUEUE_P99_MS),
                _by(p99, QUEUE_P99_MS),
            ]
        )
    wanted = QUEUE_THROUGHPUT_SHARE * floor_best
    targets.append(
        [
            "queue: jobs/s, one gateway + one worker (spoken)",
            f"≥ {QUEUE_THROUGHPUT_SHARE}\u00d7 floor = {wanted:.0f}/s",
            f"{_fmt(audio_best)}/s ({audio_best / floor_best:.2f}\u00d7 floor)",
            _verdict(audio_best >= wanted),
            _by(audio_best, wanted, lower_is_better=False),
        ]
    )
    cpu_rows = []
    for kind, name in names.items():
        for lv in queue[kind]["levels"]:
            cpu = lv.get("cpu_ms_per_job", {})
            total = sum(cpu.values())
            cpu_rows.append(
                [
                    name,
                    lv["clients"],
                    cpu.get("gateway"),
                    cpu.get("worker"),
                    cpu.get("redis"),
                    cpu.get("client"),
                    round(total, 2),
                    round(2000 / total, 0) if total else None,
                ]
            )
    out = [
        "## 1. Queue overhead: the `echo` backend against a bare Celery chain\n",
        "Each client loops: `POST /v1/jobs`, open the job's SSE stream, read to `done`. A "
        "spoken question (a short espeak-ng WAV) runs both stages, `transcribe → answer`, like "
        "the floor's two-task chain; a typed question runs only `answer`. The floor is a "
        "Celery chain of two tasks with audiochat's worker settings, each appending one event "
        "to a Redis Stream and publishing it (`shared.events`), timed from `apply_async` to the "
        "receipt of the second event. Floor, spoken and typed runs are interleaved level by "
        "level; each side has its own redis-server.\n",
        f"![queue latency and throughput]({_plot_queue(queue)})\n",
        _table(
            [
                "what",
                "clients",
                "jobs",
                "errors",
                "jobs/s",
                "first event p50 (ms)",
                "first event p99",
                "done p50 (ms)",
                "done p99",
            ],
            rows,
        ),
        "",
        f"Best throughput: floor {_fmt(floor_best)}/s, spoken {_fmt(audio_best)}/s "
        f"({audio_best / floor_best:.2f}\u00d7 the floor), typed {_fmt(text_best)}/s "
        f"({text_best / floor_best:.2f}\u00d7).\n",
        "### What costs the time\n",
        "CPU time each process spent per job (user + system, from `/proc`, over each level). "
        "Two cores supply 2 000 ms of CPU per second, so 2 000 / (total ms per job) bounds "
        "the jobs per second this machine can do even if nothing ever waited:\n",
        _table(
            [
                "what",
                "clients",
                "gateway",
                "worker",
                "redis",
                "client (bench)",
                "total ms/job",
                "CPU bound (jobs/s)",
            ],
            cpu_rows,
        ),
        "",
    ]
    check = queue.get("live_workers_check")
    if check:
        out.append(
            "The gateway refuses a job when no live worker serves its model "
            "(`WorkerRegistry.live_workers`). It reads one sorted set of heartbeats, so the check "
            "must not grow with the keys every job leaves behind for the retention period. "
            "Measured from the bench process on the same Redis: "
            f"{_fmt(check['before']['ms'], 2)} ms per check with {_fmt(check['before']['keys'])} "
            f"keys before the levels, {_fmt(check['after']['ms'], 2)} ms with "
            f"{_fmt(check['after']['keys'])} keys after them.\n"
        )
    profiles = queue.get("profiles") or {}
    if profiles:
        out.append(
            "Profiles (py-spy, sampling the processes while 32 clients send spoken questions, "
            "and the floor worker while 32 threads send chains):\n"
        )
        out.append(_profile_tables("Gateway", profiles.get("gateway")))
        out.append(_profile_tables("Worker (echo)", profiles.get("worker")))
        out.append(_profile_tables("Floor worker (bare chain)", profiles.get("floor_worker"), 6))
    return "\n".join(out)


def _service_rest(s: dict[str, Any]) -> float:
    """Service time not spent in the worker's two stages: what the queue and the HTTP add."""
    stages = (s["worker_transcribe_seconds"] or 0) + (s["worker_answer_seconds"] or 0)
    return float(s["seconds"] - stages)


def _e2e_section(e2e: dict[str, Any], targets: list[list[str]]) -> str:
    rows = []
    for c in e2e["clips"]:
        d, s = c["direct"], c["service"]
        rows.append(
            [
                f"`{c['clip']}`",
                c["source"],
                c["audio_seconds"],
                f"{d['seconds']:.2f}",
                f"{s['seconds']:.2f}",
                f"{c['ratio']:.3f}",
                c["same_transcript"],
                c["same_answer"],
                _fmt(c.get("wer_direct"), 3),
                _fmt(c.get("wer_service"), 3),
            ]
        )
    parts = []
    for c in e2e["clips"]:
        d, s = c["direct"], c["service"]
        parts.append(
            [
                f"`{c['clip']}`",
                f"{d['transcribe_seconds']:.2f}",
                f"{d['answer_seconds']:.2f}",
                f"{s['accepted_seconds']:.3f}",
                f"{s['worker_transcribe_seconds'] or 0:.2f}",
                f"{s['worker_answer_seconds'] or 0:.2f}",
                f"{_service_rest(s):.3f}",
            ]
        )
    summary = e2e["summary"]
    ratio = summary["ratio_p50"]
    same = summary["same_transcripts"] == summary["clips"]
    targets.append(
        [
            "end to end: service / direct time, p50 over clips",
            f"≤ {E2E_RATIO:.2f}\u00d7",
            f"{ratio:.3f}\u00d7",
            _verdict(ratio <= E2E_RATIO),
            _by(ratio, E2E_RATIO),
        ]
    )
    targets.append(
        [
            "end to end: same transcript",
            "every clip",
            f"{summary['same_transcripts']} of {summary['clips']}",
            _verdict(same),
            "\u2013",
        ]
    )
    params = e2e["params"]
    rest = _median([_service_rest(c["service"]) for c in e2e["clips"]])
    return "\n".join(
        [
            "## 2. End to end on the embedded models\n",
            "For each clip, the same work done directly in one Python process "
            "(`EmbeddedBackend.load(settings)`: decode, transcribe with Whisper tiny.en, answer "
            "the transcript with SmolLM2-135M) and through audiochat (`POST` with the audio → "
            "`done` on the SSE stream; one gateway, one embedded worker, the local store). Greedy "
            f"decoding, `max_new_tokens` {params['max_new_tokens']}; each clip "
            f"{params.get('repeats', 1)} time(s) each way, alternating which goes first, best "
            "time of each way kept (noise from other "
            "load only ever adds time). Model loading is not timed.\n",
            f"![end to end]({_plot_e2e(e2e)})\n",
            _table(
                [
                    "clip",
                    "source",
                    "audio (s)",
                    "direct (s)",
                    "service (s)",
                    "ratio",
                    "same transcript",
                    "same answer",
                    "WER direct",
                    "WER service",
                ],
                rows,
            ),
            "",
            f"p50 over clips: direct {summary['direct_p50_s']:.2f} s, service "
            f"{summary['service_p50_s']:.2f} s; p50 of the per-clip ratios {ratio:.3f}. "
            "The ratio moves with the machine's noise (the same answer of up to "
            f"{params['max_new_tokens']} tokens takes different times run to run); what "
            "audiochat itself adds is the service time outside the "
            "worker's two stages (`service rest` below): p50 "
            f"{rest:.3f} s, {100 * rest / summary['direct_p50_s']:.1f} % of the direct p50.\n",
            "Where the service time goes (seconds): the direct run's two parts; the service's "
            "`POST` (upload, probe, store, enqueue), the stage times the worker recorded, and the "
            "rest (queueing, fetching and decoding the audio in the worker, events, SSE):\n",
            _table(
                [
                    "clip",
                    "direct transcribe",
                    "direct answer",
                    "service POST",
                    "worker transcribe",
                    "worker answer",
                    "service rest",
                ],
                parts,
            ),
            "",
        ]
    )


def _fanout_section(fanout: dict[str, Any], targets: list[list[str]]) -> str:
    rows = []
    for lv in fanout["levels"]:
        rss, conns = lv["gateway_rss_mb"], lv["gateway_redis_connections"]
        delivered = f"{lv['deliveries']:,}/{lv['expected_deliveries']:,}"
        rows.append(
            [
                lv["clients"],
                lv["connected"],
                delivered,
                lv["latency_ms"]["p50"],
                lv["latency_ms"]["p99"],
                lv["latency_ms"]["max"],
                rss["idle"],
                rss["connected"],
                rss["peak"],
                conns["idle"],
                conns["connected"],
                conns["after"],
                lv["connect_s"],
            ]
        )
    largest = fanout["levels"][-1]
    smallest = fanout["levels"][0]
    p99 = largest["latency_ms"]["p99"]
    rss = largest["gateway_rss_mb"]["peak"]
    n = largest["clients"]
    targets.append(
        [
            f"fan-out: p99 publish → receipt, {n:,} clients",
            f"< {FANOUT_P99_MS:g} ms",
            f"{_fmt(p99)} ms",
            _verdict(p99 is not None and p99 < FANOUT_P99_MS),
            _by(p99, FANOUT_P99_MS),
        ]
    )
    targets.append(
        [
            f"fan-out: gateway RSS, {n:,} clients",
            f"< {FANOUT_RSS_MB:g} MB",
            f"{_fmt(rss)} MB",
            _verdict(rss < FANOUT_RSS_MB),
            _by(rss, FANOUT_RSS_MB),
        ]
    )
    grew = (
        largest["gateway_redis_connections"]["connected"]
        - smallest["gateway_redis_connections"]["connected"]
    )
    pool = fanout["params"].get("redis_max_connections")
    targets.append(
        [
            "fan-out: Redis connections vs clients",
            "do not grow",
            f"{smallest['gateway_redis_connections']['connected']} at "
            f"{smallest['clients']:,} clients, "
            f"{largest['gateway_redis_connections']['connected']} at {n:,}",
            _verdict(grew <= 2),
            "\u2013",
        ]
    )
    p = fanout["params"]
    out = [
        "## 3. SSE fan-out\n",
        f"All clients follow one live job on one gateway process; the worker (a real worker "
        f"process running `bench.backends:TickBackend`) publishes {p['ticks']} answer pieces "
        f"{p['interval_ms']} ms apart, each stamped with the wall-clock time it was yielded (the "
        "pipeline publishes it at once). Every piece goes to every client in the same instant — "
        "the worst burst for one process. Clients are asyncio streams in the bench process "
        "(`bench/rawhttp.py`), connected in batches; latency is receipt time minus stamp, for "
        "every client and piece. Each level starts a fresh gateway. Redis connections are the "
        "gateway process's own TCP connections to Redis (its pool bound, "
        f"`AUDIOCHAT_REDIS_MAX_CONNECTIONS`, is {pool} per pool).\n",
        f"![fan-out]({_plot_fanout(fanout)})\n",
        _table(
            [
                "clients",
                "connected",
                "delivered",
                "p50 (ms)",
                "p99 (ms)",
                "max (ms)",
                "RSS idle (MB)",
                "RSS connected",
                "RSS peak",
                "Redis conns idle",
                "connected",
                "after",
                "connect all (s)",
            ],
            rows,
        ),
        "",
    ]
    if fanout.get("profiles", {}).get("gateway"):
        out.append(
            f"Profile of the gateway while the events went out to {n:,} clients (connecting "
            "not included), taken in a separate run of that level: sampling takes CPU from the "
            "gateway, so the table above comes from runs without the profiler:\n"
        )
        out.append(_profile_tables("Gateway, fan-out", fanout["profiles"]["gateway"]))
    return "\n".join(out)


def _upload_section(upload: dict[str, Any], targets: list[list[str]]) -> str:
    rows = []
    flat = True
    for store, sizes in upload["stores"].items():
        for size, m in sorted(sizes.items(), key=lambda kv: int(kv[0])):
            rows.append(
                [
                    store,
                    f"{int(size)} MB",
                    f"{m['seconds_best']:.3f}",
                    m["mb_per_s_best"],
                    m["rss_growth_mb_max"],
                    m["vmhwm_mb"],
                    ", ".join(r["job_status"] for r in m["runs"]),
                ]
            )
        keys = sorted(sizes, key=int)
        small, large = sizes[keys[0]]["rss_growth_mb_max"], sizes[keys[-1]]["rss_growth_mb_max"]
        store_flat = large - small <= UPLOAD_FLAT_MB
        flat = flat and store_flat
        targets.append(
            [
                f"upload: gateway peak memory vs file size ({store} store)",
                "does not grow",
                f"+{_fmt(small)} MB at {keys[0]} MB, +{_fmt(large)} MB at {keys[-1]} MB",
                _verdict(store_flat),
                "\u2013" if store_flat else f"grows by {large - small:.0f} MB",
            ]
        )
    files = upload["params"]["files"]
    out = [
        "## 4. Upload path\n",
        "WAV uploads (speech looped to length, "
        + next(iter(files.values()))["format"]
        + "): "
        + ", ".join(
            f"{int(k)} MB = {_fmt(v['bytes'])} bytes, {v['seconds']:.0f} s"
            for k, v in files.items()
        )
        + ". The gateway runs with "
        f"`AUDIOCHAT_MAX_UPLOAD_BYTES={upload['params']['max_upload_bytes']}` and "
        f"`AUDIOCHAT_MAX_AUDIO_SECONDS={upload['params']['max_audio_seconds']}`; each (store, "
        "size) pair gets a fresh gateway process, warmed by one small upload. Memory: the "
        "gateway's RSS sampled every 5 ms during the `POST`, peak minus the RSS before it "
        "(VmHWM is the process's peak since start). Throughput: file size over the `POST`'s wall "
        f"time (202 comes after probing and storing). Best of {upload['params']['repeats']}.\n",
        f"![upload]({_plot_upload(upload)})\n",
        _table(
            ["store", "size", "best (s)", "MB/s", "RSS growth (MB)", "VmHWM (MB)", "jobs"], rows
        ),
        "",
    ]
    for store in upload["stores"]:
        biggest = max(upload["stores"][store], key=int)
        prof = upload["stores"][store][biggest].get("profile")
        if prof:
            out.append(
                _profile_tables(f"Gateway during a {biggest} MB upload, {store} store", prof, 8)
            )
    return "\n".join(out)


def _share(summary: dict[str, Any] | None, name: str, kind: str = "inclusive_own") -> float:
    """The share of samples of the first frame whose function is `name` (0 if absent)."""
    for entry in (summary or {}).get(kind, []):
        if entry["frame"].split(" (", 1)[0] == name:
            return float(entry["share"])
    return 0.0


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def _findings(results: dict[str, dict[str, Any] | None]) -> str:
    """What the measurements and profiles point at, and the fix proposed for each."""
    items: list[str] = []
    queue, fanout, upload = results["queue"], results["fanout"], results["upload"]
    if queue and queue.get("live_workers_check"):
        check = queue["live_workers_check"]
        items.append(
            "**Fixed: the gateway's live-worker check no longer grows with the keyspace.** "
            "An earlier run found `WorkerRegistry.live_workers` `SCAN`ning the whole keyspace "
            "on every `POST` (18 ms with 10 551 keys, 42 % of the gateway's samples at 32 "
            "clients). Heartbeats now also go into one sorted set scored by expiry "
            "(`audiochat:workers`: `ZADD` on each beat, `ZRANGEBYSCORE` plus one `MGET` to read). "
            f"In this run: {check['before']['ms']:.2f} ms with {check['before']['keys']:,} keys, "
            f"{check['after']['ms']:.2f} ms with {check['after']['keys']:,} keys."
        )
    if queue and queue.get("profiles"):
        worker = queue["profiles"].get("worker")
        load = max(_share(worker, "JobPipeline._load_audio"), _share(worker, "decode_audio"))
        if load >= 0.1:
            items.append(
                "**For a short spoken question the worker's largest cost is fetching and "
                f"decoding the audio** ({_pct(load)} of the echo worker's samples in "
                "`JobPipeline._load_audio`): a temporary directory, a copy of the object out of "
                "the store, then PyAV with a new resampler per part (`worker/audio.py`), even "
                "though the `echo` backend ignores the samples. With a real model this is small "
                "next to inference, but it is a fixed cost per job: a local store could be read "
                "in place rather than copied, and input that is already 16 kHz mono needs no "
                "resampler."
            )
        gateway = queue["profiles"].get("gateway")
        spoken, floor = queue["audio"]["levels"], queue["floor"]["levels"]
        heavier = bool(spoken and floor) and spoken[0]["cpu_ms_per_job"].get("gateway", 0) > sum(
            floor[0]["cpu_ms_per_job"].values()
        )
        if gateway and "inclusive_own" in gateway and heavier:
            skip = {"<module>", "serve", "MetricsMiddleware.__call__", "RequestBodyLimits.__call__"}
            top = [
                f"`{e['frame'].split(' (', 1)[0]}` {_pct(e['share'])}"
                for e in gateway["inclusive_own"]
                if e["frame"].split(" (", 1)[0] not in skip
            ][:8]
            items.append(
                "**The gateway spends more CPU per spoken job than the floor's worker, Redis and "
                "producer together spend per chain** (CPU table above). A job is two HTTP "
                "requests through the middleware stack (metrics, body-size limit), a hop to the "
                "thread pool for `submit_job`, the live-worker check, a PyAV probe of the upload, "
                "the store write, the record, the `queued` event and Celery's `apply_async`, then "
                "per SSE client an `EXISTS`, an `XRANGE` replay and the relay. The heaviest of "
                "audiochat's own functions in the gateway's profile, inclusive: "
                + ", ".join(top)
                + ". With the live-worker check fixed, what remains is spread over these "
                "steps; the next candidates are fewer Redis round trips per `POST` (record, "
                "`queued` event and index in one pipeline) and the audio probe."
            )
    if upload:
        s3 = upload["stores"].get("s3")
        if s3:
            keys = sorted(s3, key=int)
            small, large = s3[keys[0]]["rss_growth_mb_max"], s3[keys[-1]]["rss_growth_mb_max"]
            speed = ", ".join(f"{s3[k]['mb_per_s_best']:.0f} MB/s at {k} MB" for k in keys)
            if large - small > UPLOAD_FLAT_MB:
                items.append(
                    "**The S3 store buffers part of a large upload in memory.** `S3Store.put` "
                    "(`shared/storage.py`) hands the upload to boto3, which reads parts ahead "
                    f"into memory: +{small:.0f} MB for {keys[0]} MB, +{large:.0f} MB for "
                    f"{keys[-1]} MB here."
                )
            else:
                items.append(
                    "**Fixed: an S3 upload no longer grows the gateway with its size.** "
                    "boto3's threaded transfer reads 8 MiB parts ahead into memory: by default "
                    "+110 MB for a 100 MB upload, and still +15 MB for 10 MB and +36 MB for "
                    "100 MB with two parts in flight. `S3Store.put` now uploads one part at a "
                    f"time (`TransferConfig(use_threads=False)`): +{small:.0f} MB for {keys[0]} "
                    f"MB, +{large:.0f} MB for {keys[-1]} MB here. The price is speed: {speed} "
                    "against the loopback S3 server, about three quarters of the threaded "
                    "transfer's 92 MB/s at 100 MB in the run before the change."
                )
        probe = max(
            _share((upload["stores"].get(st, {}).get(k) or {}).get("profile"), "probe_audio")
            for st in upload["stores"]
            for k in upload["stores"][st]
        )
        if probe >= 0.1:
            items.append(
                "**Probing an upload decodes all of it.** `shared/media.py::probe_audio` "
                "decodes every frame to measure the duration: up to "
                f"{_pct(probe)} of the gateway's samples during a large upload. For PCM "
                "codecs the duration follows from the data size and the header; decoding could "
                "stop after a few frames for them."
            )
    if fanout and fanout.get("profiles", {}).get("gateway"):
        prof = fanout["profiles"]["gateway"]
        largest = fanout["levels"][-1]
        write = _share(prof, "RequestResponseCycle.send", "self")
        loop = _share(prof, "Runner.run", "self")
        own = (
            _share(prof, "job_events.<locals>.stream")
            + _share(prof, "EventHub._dispatch")
            + _share(prof, "EventHub.follow")
        )
        dumps = _share(prof, "dumps", "self") + _share(prof, "JSONEncoder.iterencode", "self")
        items.append(
            "**Fan-out costs the gateway work per client per event.** Every live event becomes "
            f"{largest['clients']:,} socket writes from one Python process: in the profile, "
            f"{_pct(write)} of the samples are uvicorn's `send` (one transport write per client "
            f"per event) and {_pct(loop)} the event loop itself; audiochat's own per-client "
            f"code (the hub's dispatch and `follow`, and the route's `stream`) is {_pct(own)}, "
            f"of which JSON serialisation is {_pct(dumps)}: the hub encodes each event once as "
            "an SSE frame and every client is sent the same bytes (`EventHub.frame`; an earlier "
            "run, before that change, spent 5 % re-encoding per client), and sends it without "
            "the cancel scope sse-starlette puts around every write (`_EventStream` in "
            "`api/routes/jobs.py`: p50 at 1,000 clients went from 47 to 30 ms in back-to-back "
            "runs, at 5,000 from 189 to 131 ms). The p99 at 5,000 clients stays close to its "
            "1 s limit and moves from run to run: 870 ms just before that change, 796 and "
            "945 ms after it, 1,122 ms in an earlier run; it is the last of 5,000 writes in a "
            "burst, on the two cores the clients also use. What scales this is "
            "more gateway processes "
            "(`uvicorn --workers N`, or several replicas): each holds one subscription, so "
            "Redis still sees a fixed number of connections per process, and each process "
            "carries only its share of the clients."
        )
    body = "\n".join(f"{i}. {text}\n" for i, text in enumerate(items, 1))
    return (
        "## Findings and proposed fixes\n\n"
        "What the measurements and profiles point at, and what to change; the benchmarks "
        "apply none of it.\n\n" + body
    )


def write_report() -> Path:
    """Regenerate docs/benchmarks.md and its plots from the results files."""
    results = {name: _load(name) for name in ("queue", "e2e", "fanout", "upload", "answers")}
    present = {k: v for k, v in results.items() if v is not None}
    if not present:
        raise SystemExit("no results in bench/results/: run `make bench` first")
    targets: list[list[str]] = []
    sections = []
    if results["queue"]:
        sections.append(_queue_section(results["queue"], targets))
    if results["e2e"]:
        sections.append(_e2e_section(results["e2e"], targets))
    if results["fanout"]:
        sections.append(_fanout_section(results["fanout"], targets))
    if results["upload"]:
        sections.append(_upload_section(results["upload"], targets))
    first = next(iter(present.values()))["machine"]
    run_rows = [
        [
            name,
            "quick" if r["quick"] else "full",
            r["machine"]["time"],
            " / ".join(_fmt(x, 2) for x in r["machine"]["load_average"]),
            " / ".join(_fmt(x, 2) for x in r.get("load_average_end", [])),
            _fmt(r.get("duration_s")),
            r["machine"]["commit"][:12]
            + (" (+ uncommitted changes)" if r["machine"].get("code_modified") else ""),
        ]
        for name, r in present.items()
    ]
    quick = any(r["quick"] for r in present.values())
    doc = [
        "# Benchmarks\n",
        "<!-- Generated by `python -m bench.report` from bench/results/*.json; edit "
        "bench/report.py, not this file. -->\n",
        "What the queue costs, how far one gateway scales, and what the embedded models "
        "answer to short questions, measured with `make bench` "
        "(`bench/README.md` says how). Real parts only: redis-server, the moto S3 server, "
        "`audiochat serve` and `audiochat worker` processes on loopback. Each figure is a ratio "
        "or a percentile within one run on one machine. Benchmarks print and plot; they decide "
        "nothing.\n",
        (
            "> **These results come from a quick run** (`BENCH_QUICK=1`): fewer jobs, clips and "
            "clients. Run `make bench` for the full figures.\n"
        )
        if quick
        else "",
        "## The machine and the run\n",
        _table(
            ["cpu", "cores", "memory", "platform", "python", "redis-server"],
            [
                [
                    first["cpu_model"],
                    first["cpu_count"],
                    f"{first['memory_gib']} GiB",
                    first["platform"],
                    first["python"],
                    first["redis_server"],
                ]
            ],
        ),
        "",
        "Load average (1 / 5 / 15 min) when each suite started and ended — the machine was "
        "shared with other work when the load is above the core count, which adds noise to "
        "every figure:\n",
        _table(
            ["suite", "mode", "started", "load at start", "load at end", "took (s)", "commit"],
            run_rows,
        ),
        "",
        "## Targets (issue 7)\n",
        _table(["target", "limit", "measured", "", "how far"], targets),
        "",
        *sections,
        "## 5. GPU\n",
        "Pending: no GPU was available to the run that wrote this document. The plan: the "
        "`qwen2-audio` backend at full size with random weights, one job at a time versus "
        "several queued jobs — time to first token, tokens per second, GPU memory.\n",
        answers_section(results["answers"], _table, _plt(), _save) if results["answers"] else "",
        _findings(results),
    ]
    DOC.write_text("\n".join(part for part in doc if part is not None).rstrip() + "\n")
    log(f"wrote {DOC.relative_to(REPO_ROOT)}")
    return DOC


if __name__ == "__main__":
    write_report()
