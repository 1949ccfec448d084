"""LightGBM on Spark: ``relisten train-gbdt``.

* :mod:`~relisten_spark.models.gbdt.inputs` — the rows a backend trains on, the model columns
  the manifest chooses, threads, parameters;
* :mod:`~relisten_spark.models.gbdt.task` — one barrier task: NumPy blocks, ports, LightGBM's
  network, ``lightgbm.train``;
* :mod:`~relisten_spark.models.gbdt.barrier` — the driver side of barrier training;
* :mod:`~relisten_spark.models.gbdt.predict` — holdout predictions, feature importance, metrics;
* :mod:`~relisten_spark.models.gbdt.compiled` — compiled inference (lleaves), ``Booster.predict``
  as the fallback;
* :mod:`~relisten_spark.models.gbdt.stage` — the stage (``run``).

The SynapseML backend is :mod:`relisten_spark.models.synapse`; the presets are in
:mod:`relisten_spark.models.presets`.
"""
