"""The transformer retriever: a SASRec-style causal transformer over each user's listening history.

* :mod:`~relisten_spark.retrieval.sequences` — the users' event sequences as Parquet shards
  (train / calib / eval), the item table and the vocabulary;
* :mod:`~relisten_spark.retrieval.model` — the transformer and its item representation;
* :mod:`~relisten_spark.retrieval.losses` — full and sampled softmax losses (``retriever.loss``);
* :mod:`~relisten_spark.retrieval.worker` — the rank side of DDP training;
* :mod:`~relisten_spark.retrieval.train` — ``relisten train-retriever``;
* :mod:`~relisten_spark.retrieval.predict` — a trained version loaded for inference;
* :mod:`~relisten_spark.retrieval.finetune` — stage 2: pairwise fine-tuning on the ranker's
  scores (its teacher shards and rank side; the command is :mod:`relisten_spark.scoring.distil`);
* :mod:`~relisten_spark.retrieval.agreement` — how far a retriever's order agrees with the ranker's.
"""
