"""Raw data: KKBOX CSV ingest and the calibrated synthetic generator."""
