"""models stage of relisten_spark."""
