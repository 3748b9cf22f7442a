"""The models: ALS (implicit or Spark MLlib), the ALS / language-model hybrid and its registry."""
