"""The batch-scoring job script headrace hands to Glue, and the scoring contract both engines share.

Run as a program (``python glue_script.py --input ... --output ... --model ... --score mod:fn``)
this file *is* the Glue job: a plain ``SparkSession`` (not ``GlueContext``, so the very same script
runs on a laptop's local Spark), reading the input Parquet, ``mapInPandas`` calling the user's
``score(batch, model)``, the model loaded once per Python worker, Parquet written to the output
prefix, then a ``_rows`` file holding the row count (the last thing written: its presence means
the output is complete). Glue adds its own arguments (``--JOB_ID``...); unknown ones are ignored.

As a module it gives the scoring contract the local Arrow engine enforces too, so a scoring
function that returns the wrong schema fails the same way, with the same message naming the
column, on a laptop and on Glue. Only the standard library, pyarrow and pandas are imported at the
top; pyspark only inside :func:`main`. On Glue, ``steps/core/errors.py`` and ``steps/backends/model_io.py``
travel next to it in the ``--extra-py-files`` zip.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from steps.core.errors import UserError

#: Rows of the input the output schema is inferred from when none is declared.
SAMPLE_ROWS = 1024
ROWS_FILE = "_rows"

#: Declared output column types: the names users write → (pyarrow type name, Spark SQL type).
TYPES: dict[str, tuple[str, str]] = {
    "double": ("float64", "double"),
    "float64": ("float64", "double"),
    "float": ("float32", "float"),
    "float32": ("float32", "float"),
    "long": ("int64", "bigint"),
    "bigint": ("int64", "bigint"),
    "int64": ("int64", "bigint"),
    "int": ("int32", "int"),
    "integer": ("int32", "int"),
    "int32": ("int32", "int"),
    "smallint": ("int16", "smallint"),
    "int16": ("int16", "smallint"),
    "tinyint": ("int8", "tinyint"),
    "int8": ("int8", "tinyint"),
    "bool": ("bool", "boolean"),
    "boolean": ("bool", "boolean"),
    "string": ("string", "string"),
    "str": ("string", "string"),
    "large_string": ("string", "string"),
    "binary": ("binary", "binary"),
    "date": ("date32", "date"),
    "date32": ("date32", "date"),
    "timestamp": ("timestamp[us]", "timestamp"),
    "timestamp[us]": ("timestamp[us]", "timestamp"),
    "timestamp[ns]": ("timestamp[us]", "timestamp"),
}


def arrow_schema(output_schema: dict[str, str]) -> Any:
    """The pyarrow schema of a declared ``{column: type}`` mapping (unknown type → UserError)."""
    import pyarrow as pa

    fields = []
    for name, type_name in output_schema.items():
        normalised = type_name.strip().lower()
        if normalised not in TYPES:
            raise UserError(
                f"output_schema: column {name!r} has unknown type {type_name!r}; use one of {', '.join(sorted(TYPES))}"
            )
        fields.append(pa.field(name, pa.type_for_alias(TYPES[normalised][0])))
    return pa.schema(fields)


def spark_ddl(schema: Any) -> str:
    """The Spark DDL string (``a double, b string``) of a pyarrow schema."""
    import pyarrow as pa

    spark_by_arrow = {str(pa.type_for_alias(arrow)): spark for arrow, spark in TYPES.values()}
    columns = []
    for field in schema:
        alias = "string" if str(field.type) == "large_string" else str(field.type)
        alias = "timestamp[us]" if alias.startswith("timestamp") else alias
        if alias not in spark_by_arrow:
            raise UserError(f"score output column {field.name!r}: type {field.type} has no Spark equivalent")
        columns.append(f"`{field.name}` {spark_by_arrow[alias]}")
    return ", ".join(columns)


def infer_schema(frame: Any) -> Any:
    """The output schema taken from a scored sample (``large_string`` normalised to ``string``)."""
    import pyarrow as pa

    table = _as_table(frame, "the first batch")
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_timestamp(kind):
            kind = pa.timestamp("us")
        elif pa.types.is_null(kind):
            raise UserError(
                f"score output column {field.name!r} is all null in the first batch, so its type is unknown; "
                "declare it in output_schema, e.g. output_schema={'" + field.name + "': 'double'}"
            )
        fields.append(pa.field(field.name, kind))
    return pa.schema(fields)


def _as_table(frame: Any, where: str) -> Any:
    import pandas as pd
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    if not isinstance(frame, pd.DataFrame):
        raise UserError(f"score returned a {type(frame).__name__} for {where}; return a pandas DataFrame")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise UserError(
            f"score returned a DataFrame Arrow can not store ({error}); give each column one type"
        ) from error


def conform(frame: Any, schema: Any, where: str = "a batch") -> Any:
    """Check a scored batch against the output schema; return it as an Arrow table in that schema.

    A missing or extra column, or a column of another kind (text where a number is expected), is a
    :class:`UserError` naming the column. Numeric widening (int → double) is allowed when lossless.
    """
    import pyarrow as pa

    table = _as_table(frame, where)
    expected = list(schema.names)
    got = list(table.column_names)
    for name in expected:
        if name not in got:
            raise UserError(
                f"score output: column {name!r} is missing in {where} (got {got}, expected {expected}); "
                "return the same columns for every batch or fix output_schema"
            )
    for name in got:
        if name not in expected:
            raise UserError(
                f"score output: unexpected column {name!r} in {where} (expected {expected}); "
                "drop it or add it to output_schema"
            )
    columns = []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            column = _cast(column, field, where)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(column: Any, field: Any, where: str) -> Any:
    import pyarrow as pa

    def numeric(kind: Any) -> bool:
        return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))

    same_family = (
        (numeric(column.type) and numeric(field.type))
        or pa.types.is_null(column.type)
        or (pa.types.is_string(field.type) and pa.types.is_large_string(column.type))
        or (pa.types.is_timestamp(field.type) and pa.types.is_timestamp(column.type))
    )
    if same_family:
        try:
            return column.cast(field.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    raise UserError(
        f"score output: column {field.name!r} has type {column.type} in {where}, expected {field.type}; "
        "convert it in the scoring function or fix output_schema"
    )


def load_callable(spec: str) -> Callable[..., Any]:
    """``package.module:function`` or ``path/to/file.py:function`` → the function."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UserError(f"score {spec!r}: give MODULE:FUNCTION, e.g. scoring:score")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            name = f"headrace_score_{path.stem}"
            if name in sys.modules:
                module = sys.modules[name]
            else:
                spec_obj = importlib.util.spec_from_file_location(name, path)
                if spec_obj is None or spec_obj.loader is None:
                    raise UserError(f"score {spec!r}: can not import {path}")
                module = importlib.util.module_from_spec(spec_obj)
                sys.modules[name] = module
                spec_obj.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError) as error:
        raise UserError(f"score {spec!r}: can not import {module_name} ({error})") from error
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UserError(f"score {spec!r}: {module_name} has no {attribute!r}")
    if not callable(target):
        raise UserError(f"score {spec!r}: {attribute} is not a function")
    return target  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- the Spark job


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="headrace batch scoring (Glue / local Spark)")
    parser.add_argument("--input", required=True, help="input Parquet file or prefix")
    parser.add_argument("--output", required=True, help="output Parquet prefix")
    parser.add_argument("--model", required=True, help="model artifact (model.tar.gz, .joblib, .pkl)")
    parser.add_argument("--score", required=True, help="MODULE:FUNCTION")
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--output-schema", default="", help='JSON {"column": "type"}; inferred when empty')
    parser.add_argument("--spark-master", default="", help="local[2] etc.; empty on Glue")
    parser.add_argument("--spark-conf", action="append", default=[], help="KEY=VALUE")
    args, _unknown = parser.parse_known_args(argv)  # Glue adds --JOB_ID, --TempDir...
    return args


def _write_text(spark: Any, uri: str, text: str) -> None:
    """Write a small file through Hadoop's FileSystem, so it works on S3 (Glue) and locally."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    filesystem = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = filesystem.create(path, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from pyspark import SparkFiles
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("headrace-batch-score")
    if args.spark_master:
        builder = builder.master(args.spark_master)
    for item in args.spark_conf:
        key, _, value = item.partition("=")
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.batch_size))
    spark = builder.getOrCreate()
    ready = time.perf_counter()
    try:
        spark.sparkContext.addFile(args.model)
        model_name = args.model.rstrip("/").rsplit("/", 1)[-1]
        score_spec = args.score
        source = spark.read.parquet(args.input)

        from steps.backends.model_io import load_model

        score = load_callable(score_spec)
        if args.output_schema:
            schema = arrow_schema(json.loads(args.output_schema))
        else:
            sample = source.limit(min(args.batch_size, SAMPLE_ROWS)).toPandas()
            schema = infer_schema(score(sample, load_model(SparkFiles.get(model_name))))
        ddl = spark_ddl(schema)

        def score_partition(batches: Iterator[Any]) -> Iterator[Any]:
            model = load_model(SparkFiles.get(model_name))  # cached: once per Python worker
            function = load_callable(score_spec)
            for number, batch in enumerate(batches):
                scored = conform(function(batch, model), schema, f"batch {number}")
                yield scored.to_pandas()

        source.mapInPandas(score_partition, ddl).write.mode("overwrite").parquet(args.output)
        rows = spark.read.parquet(args.output).count()
        _write_text(spark, args.output.rstrip("/") + "/" + ROWS_FILE, str(rows))
        # The work itself, apart from Spark's start-up (the JVM, the session): read by steps.backends.glue.
        print(f"headrace: scored {rows} rows into {args.output} in {time.perf_counter() - ready:.3f} s", flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
