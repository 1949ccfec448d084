"""scoring stage of relisten_spark."""
