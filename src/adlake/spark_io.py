"""Spark reading and writing lake-side files on any filesystem pyarrow reaches.

The Spark here has no Hadoop connector for object stores (no jars), so files on ``s3://`` are read by a
Python data source and staging Parquet is written by Python tasks, both on the executors through
``adlake.lake.storage.arrow_fs``. Spark still parses CSV and JSON itself, so a manifest means the same on
``s3://`` as in a local folder. Staging output is a *committed file list*: each task writes its own file
and returns its name; only the files of tasks that succeeded are read back, so a retried or speculative
task leaves no duplicate rows behind.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

from adlake.lake.storage import Staging, arrow_fs, is_local

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, DataFrameReader, SparkSession

SOURCE = "adlake_files"
SPLIT_BYTES = 64 << 20  # a JSONL file is read in splits of this size, each by its own task


@dataclass
class _Split(InputPartition):
    start: int  # byte offset (text) or row group (parquet)
    end: int


class _Reader(DataSourceReader):
    def __init__(self, options: dict[str, str]) -> None:
        self.uri, self.kind = options["path"], options["kind"]
        self.storage = json.loads(options.get("storage", "{}"))

    def _open(self):
        fs, path = arrow_fs(self.uri, self.storage)
        return fs, path

    def partitions(self) -> list[_Split]:
        fs, path = self._open()
        if self.kind == "parquet":
            with fs.open_input_file(path) as f:
                groups = pq.ParquetFile(f).num_row_groups
            return [_Split(g, g + 1) for g in range(groups)] or [_Split(0, 0)]
        size = fs.get_file_info(path).size
        if self.kind == "csv_records":  # a quoted field may span lines: one task reads the file
            return [_Split(0, size)]
        return [_Split(a, min(a + SPLIT_BYTES, size)) for a in range(0, size, SPLIT_BYTES)] or [_Split(0, 0)]

    def read(self, split: _Split):
        fs, path = self._open()
        if self.kind == "parquet":
            with fs.open_input_file(path) as f:
                pf = pq.ParquetFile(f)
                for g in range(split.start, split.end):
                    yield from pf.read_row_group(g).to_batches()
            return
        with fs.open_input_file(path) as raw:
            lines = _lines(io.BufferedReader(raw), split.start, split.end)
            values = _records(lines) if self.kind == "csv_records" else lines
            batch: list[str] = []
            for value in values:
                batch.append(value)
                if len(batch) == 8192:
                    yield pa.RecordBatch.from_pydict({"value": batch})
                    batch = []
            if batch:
                yield pa.RecordBatch.from_pydict({"value": batch})


def _lines(f: io.BufferedReader, start: int, end: int):
    """The lines that start in [start, end), decoded (bad bytes replaced, as Spark's text source does)."""
    pos = start
    if start:
        f.seek(start - 1)
        pos += len(f.readline()) - 1  # the line holding byte start-1 belongs to the split before
    first = start == 0
    while pos < end:
        line = f.readline()
        if not line:
            break
        pos += len(line)
        text = line.decode("utf-8-sig" if first else "utf-8", errors="replace").rstrip("\r\n")
        first = False
        yield text


def _records(lines):
    """CSV records by RFC 4180: a record ends at a line break outside quotes (doubled quotes keep parity)."""
    parts: list[str] = []
    quotes = 0
    for line in lines:
        parts.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield "\n".join(parts)
            parts, quotes = [], 0
    if parts:
        yield "\n".join(parts)  # an unterminated quote: Spark's parser says what is wrong with it


class FilesSource(DataSource):
    """``spark.read.format("adlake_files").option("path", uri).option("kind", "text"|"csv_records"|"parquet")``."""

    @classmethod
    def name(cls) -> str:
        return SOURCE

    def schema(self):
        if self.options["kind"] != "parquet":
            return "value string"
        from pyspark.sql.pandas.types import from_arrow_schema

        fs, path = arrow_fs(self.options["path"], json.loads(self.options.get("storage", "{}")))
        with fs.open_input_file(path) as f:
            return from_arrow_schema(pq.read_schema(f))

    def reader(self, schema) -> _Reader:
        return _Reader(dict(self.options))


def _source(spark: SparkSession, uri: str, kind: str, storage: dict[str, str] | None) -> DataFrame:
    spark.dataSource.register(FilesSource)
    return (spark.read.format(SOURCE).option("path", uri).option("kind", kind)
            .option("storage", json.dumps(storage or {})).load())


def read_text(spark: SparkSession, uri: str, storage: dict[str, str] | None = None) -> DataFrame:
    """Lines as ``value`` (Spark's text source on a local path)."""
    return spark.read.text(uri) if is_local(uri) else _source(spark, uri, "text", storage)


def read_csv(reader: DataFrameReader, spark: SparkSession, uri: str,
             storage: dict[str, str] | None = None) -> DataFrame:
    """``reader`` (its schema and options set) on the CSV file: by Spark from a local path; on an object
    store Spark parses the records the data source splits out."""
    if is_local(uri):
        return reader.csv(uri)
    return reader.csv(_source(spark, uri, "csv_records", storage).rdd.map(lambda r: r.value))


def read_parquet(spark: SparkSession, uri: str, storage: dict[str, str] | None = None) -> DataFrame:
    return spark.read.parquet(uri) if is_local(uri) else _source(spark, uri, "parquet", storage)


def stage_parquet(df: DataFrame, uri: str, storage: dict[str, str] | None = None) -> pa.Table:
    """Each task writes its rows as one Parquet file under ``uri`` and returns its name; the driver reads
    back exactly the files of the tasks that succeeded, then removes ``uri``."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(df.schema, timezone=df.sparkSession.conf.get("spark.sql.session.timeZone"))
    opts = dict(storage or {})

    def write(batches):
        from pyspark import TaskContext

        batches = list(batches)
        rows = sum(b.num_rows for b in batches)
        if not rows:
            return
        task = TaskContext.get()
        name = f"part-{task.partitionId():05d}-{task.attemptNumber()}-{uuid.uuid4().hex[:12]}.parquet"
        Staging(uri, opts).write_parquet(name, pa.Table.from_batches(batches))
        yield pa.RecordBatch.from_pydict({"name": [name], "rows": [rows]})

    written = sorted(r["name"] for r in df.mapInArrow(write, "name string, rows long").collect())
    staging = Staging(uri, opts)
    try:
        if not written:
            return schema.empty_table()
        return pads.dataset([f"{staging.path}/{n}" for n in written], format="parquet",
                            filesystem=staging.fs).to_table()
    finally:
        staging.remove()
