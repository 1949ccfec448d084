"""``python -m relisten_spark <command> ...``: the same CLI as ``relisten``."""

import sys

from relisten_spark.cli import main

sys.exit(main())
