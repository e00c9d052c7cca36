"""The rollup as a Spark application, for ``spark-submit`` on an existing cluster.

    spark-submit --master yarn --deploy-mode client \
        "$(python -c 'import mysetlist_slo.engine.spark_job as job; print(job.__file__)')" \
        --lake /shared/lake --out /shared/rollups/2026-W47 [--config slo.yaml]

The master, executors and every other Spark setting come from spark-submit and
spark-defaults.conf. Only the driver imports this package: the rollup is Spark SQL throughout
(no Python UDFs), so executors need nothing but Spark itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mysetlist_slo.config import load_config
from mysetlist_slo.engine.run import rollup_lake
from mysetlist_slo.errors import SloError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rollup on the Spark session spark-submit set up; return the exit status."""
    parser = argparse.ArgumentParser(prog="spark_job", description=__doc__.splitlines()[0])
    # Text, not Path: Path("s3://b") is "s3:/b", which would hide an object-store URL.
    parser.add_argument("--lake", required=True, help="the request lake")
    parser.add_argument("--out", required=True, help="the rollup output folder")
    parser.add_argument("--config", type=Path, default=None, help="configuration YAML")
    args = parser.parse_args(argv)
    try:
        result = rollup_lake(args.lake, args.out, engine="spark", config=load_config(args.config))
    except SloError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = ", ".join(f"{name} {count:,}" for name, count in result.rows.items())
    print(f"{result.out}: {result.requests:,} requests from {result.lake_files} lake files; "
          f"rows: {rows}; {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
