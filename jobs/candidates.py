"""Entry point for `spark-submit jobs/candidates.py --conf conf/cluster.yaml`.

Thin by design: the arguments are those of `relisten candidates`; the work is in relisten_spark.
"""

import sys

from relisten_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["candidates", *sys.argv[1:]]))
