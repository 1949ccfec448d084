"""evaluation stage of relisten_spark."""
