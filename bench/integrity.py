"""The integrity analytics measured: false findings on a clean town, detection of each injected
manipulation, and CPU time and memory per device-month.

Run from a source checkout:

- ``python -m bench.integrity evaluate [--seeds evaluation] [--devices 300] [--injected 100]``:
  the clean town of each seed (bench/integrity_town.yaml) analysed device-month by device-month,
  then, per manipulation of bench/integrity_injections.yaml, device-months of the same town with
  it injected; prints the share of clean device-months with any finding and the share of injected
  ones found by the finding of their kind. The thresholds were tuned on the ``tuning`` seeds only.
- ``python -m bench.integrity cpu [--devices 600]``: CPU time (``time.process_time``) of the
  detectors over a month of 1-minute data of each of 600 stack devices (with their factories'
  energy meters), generated in memory: store reads are not included (they are the store's cost,
  measured separately in the tests' timings); the arrays' memory per device-month, and the peak
  of Python allocations while one device-month is analysed (``tracemalloc``).
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from alerts.integrity import analyse_month, load_thresholds
from alerts.integrity.findings import Finding
from alerts.integrity.smoothness import Roughness, peer_findings
from alerts.integrity.thresholds import Thresholds
from bench.integrity_town import generate, inject, load_injections, load_params
from bench.proc import machine


@dataclass(slots=True)
class KindResult:
    tried: int = 0
    qualified: int = 0
    detected: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.detected / self.qualified if self.qualified else 0.0


@dataclass(slots=True)
class Evaluation:
    seeds: list[int]
    clean: int = 0
    clean_flagged: int = 0
    clean_findings: Counter[str] = field(default_factory=Counter)
    flagged_examples: list[str] = field(default_factory=list)
    kinds: dict[str, KindResult] = field(default_factory=dict)
    cpu_s: float = 0.0

    @property
    def false_rate(self) -> float:
        return self.clean_flagged / self.clean if self.clean else 0.0


def _findings(
    month_findings: list[Finding],
    roughness: list[Roughness],
    peers: list[Roughness],
    th: Thresholds,
    who: tuple[str, str],
) -> list[Finding]:
    """A device-month's findings, with the comparison against its peers of the same town."""
    others = [r for r in peers if (r.factory, r.device) != who]
    compared = [f for f in peer_findings([*others, *roughness], th) if (f.factory, f.device) == who]
    return month_findings + compared


def evaluate(
    seeds: Sequence[int],
    devices: int,
    injected: int,
    kinds: Sequence[str] | None = None,
    th: Thresholds | None = None,
    candidates: int | None = None,
) -> Evaluation:
    """``devices`` clean device-months per seed; per manipulation, the first ``injected`` of the
    seed's device-months (among ``candidates``, default ``devices``) that qualify, injected."""
    th = th or load_thresholds()
    params = load_params()
    injections = load_injections()
    kinds = list(kinds or injections)
    result = Evaluation(list(seeds), kinds={k: KindResult() for k in kinds})
    for seed in seeds:
        town: list[Roughness] = []
        month_findings: dict[int, list[Finding]] = {}
        for index in range(devices):
            g = generate(params, seed, index)
            started = time.process_time()
            r = analyse_month(g.month, th)
            result.cpu_s += time.process_time() - started
            town += r.roughness
            month_findings[index] = r.findings
        compared = peer_findings(town, th)
        for index in range(devices):
            who = (f"g{index:04d}", "stack-1")
            found = month_findings[index] + [f for f in compared if (f.factory, f.device) == who]
            result.clean += 1
            if found:
                result.clean_flagged += 1
                result.clean_findings.update(f.kind for f in found)
                result.flagged_examples.append(f"seed {seed} {who[0]}: {', '.join(f.variant for f in found)}")
        for kind_index, kind in enumerate(kinds):
            k = result.kinds[kind]
            wanted = injected * (list(seeds).index(seed) + 1)
            for index in range(candidates or devices):
                if k.qualified >= wanted:
                    break
                g = generate(params, seed, index)
                rng = np.random.default_rng([seed, index, 2, kind_index])
                k.tried += 1
                if not inject(g, kind, injections[kind], rng):
                    continue
                k.qualified += 1
                r = analyse_month(g.month, th)
                found = _findings(r.findings, r.roughness, town, th, (g.month.factory, g.month.device))
                if any(f.kind == kind for f in found):
                    k.detected += 1
                else:
                    k.missed.append(f"seed {seed} {g.month.factory} {g.injected.get(kind)}")
    return result


def report_evaluation(e: Evaluation) -> list[str]:
    lines = [
        f"clean device-months: {e.clean}, with any finding: {e.clean_flagged} ({e.false_rate:.2%})"
        + (f" {dict(e.clean_findings)}" if e.clean_findings else ""),
        "| manipulation | device-months tried | qualified | detected | rate |",
        "|---|---|---|---|---|",
    ]
    for kind, k in e.kinds.items():
        lines.append(f"| {kind} | {k.tried} | {k.qualified} | {k.detected} | {k.rate:.1%} |")
    return lines


@dataclass(slots=True)
class CpuResult:
    devices: int
    detector_cpu_s: float
    per_device_ms: float
    generate_s: float
    month_bytes: int
    peak_analysis_bytes: int
    findings: int


def measure_cpu(devices: int, seed: int) -> CpuResult:
    th = load_thresholds()
    params = load_params()
    cpu = 0.0
    gen = 0.0
    findings = 0
    month_bytes = 0
    town: list[Roughness] = []
    for index in range(devices):
        started = time.process_time()
        g = generate(params, seed, index)
        gen += time.process_time() - started
        month_bytes = max(month_bytes, g.month.nbytes())
        started = time.process_time()
        r = analyse_month(g.month, th)
        cpu += time.process_time() - started
        town += r.roughness
        findings += len(r.findings)
    started = time.process_time()
    findings += len(peer_findings(town, th))
    cpu += time.process_time() - started
    g = generate(params, seed, 0)
    tracemalloc.start()
    analyse_month(g.month, th)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return CpuResult(devices, cpu, cpu / devices * 1000, gen, month_bytes, peak, findings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.integrity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("evaluate", help="false findings on a clean town, detection of injected manipulations")
    p.add_argument("--seeds", default="evaluation", choices=("evaluation", "tuning", "test"))
    p.add_argument("--devices", type=int, default=300, help="device-months per seed (default 300)")
    p.add_argument(
        "--injected", type=int, default=100, help="qualified injected device-months per kind and seed"
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="device-months scanned per seed for injections (default --devices)",
    )
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("cpu", help="CPU time of the detectors for a month of 1-minute data")
    p.add_argument("--devices", type=int, default=600)
    p.add_argument("--seed", type=int, default=None, help="default: the first evaluation seed")
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    params = load_params()
    info = machine()
    if args.command == "evaluate":
        seeds = [int(s) for s in params["seeds"][args.seeds]]
        e = evaluate(seeds, args.devices, args.injected, candidates=args.candidates)
        if args.json:
            print(
                json.dumps(
                    {
                        "machine": info,
                        "seeds": seeds,
                        "clean": e.clean,
                        "clean_flagged": e.clean_flagged,
                        "kinds": {k: asdict(v) | {"rate": v.rate} for k, v in e.kinds.items()},
                    },
                    indent=2,
                )
            )
        else:
            print(f"{info} seeds {args.seeds} {seeds}, {args.devices} device-months per seed")
            print("\n".join(report_evaluation(e)))
            for kind, k in e.kinds.items():
                for miss in k.missed[:5]:
                    print(f"  missed {kind}: {miss}")
            for example in e.flagged_examples[:10]:
                print(f"  clean with a finding: {example}")
        return 0
    seed = args.seed if args.seed is not None else int(params["seeds"]["evaluation"][0])
    c = measure_cpu(args.devices, seed)
    if args.json:
        print(json.dumps({"machine": info} | asdict(c), indent=2))
    else:
        print(f"{info}")
        print(
            f"{c.devices} stack devices x 1 month of 1-minute data: detectors {c.detector_cpu_s:.1f} s CPU"
            f" ({c.per_device_ms:.1f} ms per device-month; generating the data took {c.generate_s:.1f} s, not"
            f" counted); arrays per device-month {c.month_bytes / 2**20:.2f} MiB; peak Python allocations"
            f" while one is analysed {c.peak_analysis_bytes / 2**20:.2f} MiB; {c.findings} findings"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
