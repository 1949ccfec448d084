"""features stage of relisten_spark."""
