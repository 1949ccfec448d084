"""Entry point for `spark-submit jobs/train-nets.py --conf conf/cluster.yaml`.

Thin by design: the arguments are those of `relisten train-nets`; the work is in relisten_spark.
"""

import sys

from relisten_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-nets", *sys.argv[1:]]))
