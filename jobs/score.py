"""Entry point for `spark-submit jobs/score.py --conf conf/cluster.yaml`.

Thin by design: the arguments are those of `relisten score`; the work is in relisten_spark.
"""

import sys

from relisten_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
