"""A long fuzzing campaign over every loader of user files (tests/test_fuzz.py, hypothesis).

    python benchmarks/fuzz_campaign.py --minutes 10
    python benchmarks/fuzz_campaign.py --minutes 60 --examples 5000 --log fuzz-logs

Runs the property tests of tests/test_fuzz.py again and again, each round in its own process with
a fresh random seed and ``--examples`` inputs per property (CI tries 30), until ``--minutes`` have
passed. Prints the inputs tried per loader, how each ended (read, or refused with which of the
package's own errors), and every failure: a property that broke, with the seed that reproduces it
(``python -m pytest tests/test_fuzz.py --hypothesis-seed=SEED`` with the campaign profile) and the
minimal input hypothesis shrank it to, in the round's log under ``--log``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_round(seed: int, examples: int, log: Path, memory_gb: float) -> tuple[dict, list[str], float]:
    """One pytest process over tests/test_fuzz.py: (counts, failed tests, seconds). Its address space
    is capped at ``memory_gb``, so an input that makes a loader allocate without bound fails as a
    MemoryError (and is shrunk) instead of stopping the machine."""
    limit = int(memory_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryDirectory(prefix="masksdm-fuzz-campaign-") as folder:
        report = Path(folder) / "counts.json"
        env = {**os.environ, "MASKSDM_FUZZ_PROFILE": "campaign", "MASKSDM_FUZZ_EXAMPLES": str(examples),
               "MASKSDM_FUZZ_REPORT": str(report), "OMP_NUM_THREADS": "1"}  # fmt: skip
        command = [sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-rf", "-p", "no:cacheprovider",
                   f"--hypothesis-seed={seed}"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              preexec_fn=cap)
        seconds = time.perf_counter() - start
        counts = json.loads(report.read_text()) if report.exists() else {"tried": {}, "outcomes": {}}
    failed = re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)
    if done.returncode not in (0, 1) and not failed:
        failed = [f"pytest exit {done.returncode}"]
    if failed:
        log.mkdir(parents=True, exist_ok=True)
        (log / f"round-seed{seed}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    return counts, failed, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="stop starting rounds after this long")
    parser.add_argument("--examples", type=int, default=2000, help="inputs per property per round")
    parser.add_argument("--log", type=Path, default=Path("fuzz-logs"), help="folder for the logs of failed rounds")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="address space of one round (8 GiB)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the rounds' seeds (default: random)")
    args = parser.parse_args()

    seeds = random.Random(args.seed)
    tried: collections.Counter[str] = collections.Counter()
    outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failures: list[tuple[int, str]] = []
    start, rounds = time.perf_counter(), 0
    while rounds == 0 or time.perf_counter() - start < args.minutes * 60:
        seed = seeds.randrange(2**32)
        counts, failed, seconds = run_round(seed, args.examples, args.log, args.memory_gb)
        rounds += 1
        tried.update(counts["tried"])
        for loader, ends in counts["outcomes"].items():
            outcomes[loader].update(ends)
        failures += [(seed, name) for name in failed]
        print(f"round {rounds} (seed {seed}): {sum(counts['tried'].values()):,} inputs in {seconds:.0f} s, "
              f"{len(failed)} failure(s) {' '.join(failed)}", flush=True)  # fmt: skip
    minutes = (time.perf_counter() - start) / 60

    print(f"\n{rounds} rounds, {sum(tried.values()):,} inputs in {minutes:.1f} min, {args.examples} per property per round\n")
    print("| loader | inputs tried | read | refused (package errors) | failures |")
    print("|---|---:|---:|---|---:|")
    for loader in sorted(tried):
        ends = outcomes[loader]
        refused = ", ".join(f"{name} {n:,}" for name, n in sorted(ends.items()) if name != "ok") or "none"
        broke = sum(1 for _, name in failures if _loader_of(name) == loader)
        print(f"| {loader} | {tried[loader]:,} | {ends.get('ok', 0):,} | {refused} | {broke} |")
    if failures:
        print(f"\n{len(failures)} failure(s); logs in {args.log}/:")
        for seed, name in failures:
            print(f"  seed {seed}: {name}")
    else:
        print("\nno failure: every input was read consistently or refused with one of the package's errors")
    sys.exit(1 if failures else 0)


_TESTS = {  # test name -> the loader its counts are under
    "test_fuzz_presence_table": "presence table", "test_fuzz_presence_table_valid_input_is_read_exactly": "presence table (valid)",
    "test_fuzz_splotopen": "sPlotOpen", "test_fuzz_occurrences": "occurrences (read)", "test_fuzz_config": "config",
    "test_fuzz_raster_extraction": "raster extraction", "test_fuzz_raster_stack": "raster stack",
    "test_fuzz_checkpoint": "checkpoint",
}  # fmt: skip


def _loader_of(failed: str) -> str:
    return _TESTS.get(failed.split("::")[-1].split("[")[0], failed)


if __name__ == "__main__":
    main()
