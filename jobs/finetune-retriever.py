"""Entry point for `spark-submit jobs/finetune-retriever.py --conf conf/cluster.yaml`.

Thin by design: the arguments are those of `relisten finetune-retriever`; the work is in relisten_spark.
"""

import sys

from relisten_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune-retriever", *sys.argv[1:]]))
