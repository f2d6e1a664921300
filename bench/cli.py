"""`python -m bench [--quick] [--only queue,e2e,fanout,upload,batching,answers] [--no-profile]
[--no-report]`."""

from __future__ import annotations

import argparse
import importlib
import time

from bench.harness import log, raise_fd_limit, write_result

SUITES = ("queue", "e2e", "fanout", "upload", "batching", "answers")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer jobs, clips and clients")
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--no-report", action="store_true", help="do not regenerate docs/benchmarks.md"
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites: {', '.join(sorted(unknown))}")
    # 5 000 SSE clients and the gateway's side of them need more than the usual 1 024 files.
    raise_fd_limit(16_384)
    started = time.monotonic()
    for name in chosen:
        suite_started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        result = module.run(quick=args.quick, profile=not args.no_profile)
        result["duration_s"] = round(time.monotonic() - suite_started, 1)
        write_result(name, result)
        log(f"{name} took {result['duration_s']:.0f} s")
    log(f"all suites took {time.monotonic() - started:.0f} s")
    if not args.no_report:
        from bench.report import write_report

        write_report()
