"""`make bench`: every benchmark prints its figures next to a baseline measured in the same run."""

from __future__ import annotations

import argparse

from bench import bench_lake

BENCHMARKS = {"lake": bench_lake.run}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    args = p.parse_args()
    for name in args.names or BENCHMARKS:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
