"""The models: candidate generators (ALS on implicit or Spark MLlib, item-to-item, sequence,
embedding, popularity), the learned ranker over them, and the registry."""
