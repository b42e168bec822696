"""Where task outputs live: the artifact store (:mod:`~steps.storage.artifacts`: a folder or S3,
:mod:`~steps.storage.s3`) and the one owner of the AWS SDK session (:mod:`~steps.storage.aws`)."""

__all__ = ["artifacts", "aws", "files", "s3"]
