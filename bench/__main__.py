"""`make bench`: every benchmark prints its figures next to a baseline measured in the same run."""

from __future__ import annotations

import argparse

from bench import (
    bench_crawl,
    bench_embed,
    bench_filter,
    bench_index,
    bench_ingest,
    bench_parse,
    bench_scaleout,
    bench_tokenize,
)

BENCHMARKS = {"filter": bench_filter.run, "ingest": bench_ingest.run, "parse": bench_parse.run,
              "embed": bench_embed.run, "tokenize": bench_tokenize.run, "index": bench_index.run,
              # issue 15's scale-out figures (the crawl alone takes about 25 min on 2 cores)
              "scaleout": bench_scaleout.run, "crawl": bench_crawl.run}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {sorted(BENCHMARKS)})")
    args = p.parse_args()
    for name in args.names or BENCHMARKS:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
