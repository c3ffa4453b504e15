"""What the Prometheus middleware costs: GET /api/v1/health with and without it.

Run from api/: `../.venv/bin/python -m benchmarks.metrics_overhead` (or
`make bench-metrics`). Both servers run in the same run; their rounds alternate
so that a change in machine load hits both alike. Prints requests/s and the ratio.
"""

import argparse
import resource
import statistics
import time

from benchmarks.http_load import run, run_load
from benchmarks.servers import api_server

HEALTH = "/api/v1/health"


async def measure(base: str, concurrency: int, seconds: float) -> float:
    result = await run_load(base + HEALTH, concurrency=concurrency, duration=seconds)
    if set(result.statuses) != {200}:
        raise RuntimeError(f"unexpected answers: {result.statuses}")
    return result.rate


def client_cpu() -> float:
    """CPU seconds this process (the load generator) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description="Cost of the metrics middleware")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0, help="per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    rates: dict[str, list[float]] = {"with metrics": [], "without metrics": []}
    with (
        api_server(METRICS_ENABLED="true") as with_metrics,
        api_server(METRICS_ENABLED="false") as without_metrics,
    ):
        bases = {"with metrics": with_metrics, "without metrics": without_metrics}
        for base in bases.values():  # warm up: imports, first connections
            run(measure(base, args.concurrency, 1.0))
        cpu_before, started = client_cpu(), time.perf_counter()
        for _ in range(args.rounds):
            for label, base in bases.items():
                rates[label].append(run(measure(base, args.concurrency, args.seconds)))
        client_load = (client_cpu() - cpu_before) / (time.perf_counter() - started)

    print(f"GET {HEALTH}, {args.concurrency} connections, {args.rounds} rounds of {args.seconds}s")
    for label, values in rates.items():
        spread = ", ".join(f"{value:.0f}" for value in values)
        print(f"  {label:<16} median {statistics.median(values):8.0f} req/s  ({spread})")
    ratio = statistics.median(rates["with metrics"]) / statistics.median(rates["without metrics"])
    print(f"  ratio with/without: {ratio:.3f}")
    # Near 100% would mean the load generator, not the API, set the pace.
    print(f"  load generator CPU: {client_load * 100:.0f}% of one core")


if __name__ == "__main__":
    main()
