"""The Spark session of a job: local[*] by default, a master or Spark Connect by configuration."""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

from adlake.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@functools.lru_cache(maxsize=4)
def _session(master: str, connect_url: str | None, app_name: str, conf: tuple[tuple[str, str], ...]) -> SparkSession:
    from pyspark.sql import SparkSession

    # Python workers must run the interpreter (and packages) of the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(connect_url) if connect_url else builder.master(master)
    for key, value in conf:
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if not connect_url:
        session.sparkContext.setLogLevel("ERROR")
    return session


def spark_session(settings: Settings) -> SparkSession:
    """One session per distinct Spark configuration in this process."""
    s = settings.spark
    conf = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS", "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true", **s.conf}
    return _session(s.master, s.connect_url, s.app_name, tuple(sorted(conf.items())))
