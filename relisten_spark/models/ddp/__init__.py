"""``relisten train-nets``: JENN and F-ELU-Net trained with DistributedDataParallel on Spark.

Data flow (:func:`~relisten_spark.models.ddp.stage.run`):

1. Spark (:mod:`~relisten_spark.models.ddp.inputs`): read ``silver.features`` and the
   manifest's ``in_nn`` rows of ``nets.profile``, add ``eval_split``, compute the
   standardisation statistics over the ``fit`` rows
   (:mod:`~relisten_spark.models.ddp.statistics`) and write the standardised input shards of
   the run under ``<models.root>/.nets-work/<run id>/inputs`` (a training artifact, not a lake
   table);
2. ``TorchDistributor`` (:mod:`~relisten_spark.models.ddp.launch`) starts the ranks
   (:mod:`~relisten_spark.models.ddp.worker`) with what they need
   (:mod:`~relisten_spark.models.ddp.job`); each streams its share of the shards, trains with
   DDP, and rank 0 registers each net and returns its version and metrics;
3. Spark scores the calib / eval / test shards with each net
   (:mod:`~relisten_spark.models.ddp.predict`) and writes ``gold.predictions`` (models
   ``jenn``, ``felu_net``) for the evaluate stage; the run's work folder is removed.

The presets are in :mod:`relisten_spark.models.presets`, the modules in
:mod:`relisten_spark.models.nets`.
"""
