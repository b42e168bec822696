"""The backends: each hands a task off to a cloud service, or runs its local side on this machine.

BigQuery (:mod:`~steps.backends.bigquery`, local: :mod:`~steps.backends.bigquery_local`), Athena
(:mod:`~steps.backends.athena`, :mod:`~steps.backends.athena_local`), SageMaker
(:mod:`~steps.backends.sagemaker`, :mod:`~steps.backends.sagemaker_local`) and Glue
(:mod:`~steps.backends.glue`, :mod:`~steps.backends.glue_cloud`, :mod:`~steps.backends.batch_local`).
Both SQL dialects run locally through :mod:`~steps.backends.sql_local`; BigQuery parameter types for both
sides are one table (:mod:`~steps.backends.bigquery_params`). Backends are independent of
each other; pipelines import them as ``from steps import bigquery, glue, sagemaker``. The local
sides and helpers are internal: only the backends import them (``.importlinter`` contract
``backend-internals``); :mod:`~steps.backends.frameworks` is public too (the local runner keeps
its environments warm).
"""

__all__ = ["athena", "bigquery", "frameworks", "glue", "sagemaker"]
