"""The manifest filter on Spark: contract checks, dedup, engagement, duration and per-product caps.

Spark reads the manifest, runs the pandera contract checks of ``ingest.manifest`` on each partition
(``mapInPandas``), finds duplicate ad ids and URLs with windows, and decides each ad's fate. Spark
writes Parquet to the staging area; delta-rs commits it as the crawl date's partition of
``bronze.crawl_manifest`` (valid rows) and ``silver.ads`` (filtered with a reason, or ``pending`` until
the crawl gives it a video). Rows that break the contract go to ``ops.quarantine``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from adlake.ingest.crawl import STAGE as CRAWL_STAGE
from adlake.ingest.crawl import standing_failures
from adlake.ingest.manifest import (
    OPTIONAL,
    REQUIRED,
    STAGE,
    TYPED_COLUMNS,
    ManifestError,
    check_rows,
    manifest_format,
    missing_required,
    parse_json_rows,
    require_columns,
)
from adlake.ingest.urls import UrlRules
from adlake.lake import Lake, Quarantine, QuarantineRecord, count_values
from adlake.lake.sql import sql_literal
from adlake.lake.storage import Staging, arrow_fs
from adlake.spark import spark_session
from adlake.spark_io import read_csv, read_parquet, read_text, stage_parquet
from schemas.registry import ADS, CRAWL_MANIFEST, QUARANTINE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CHECKED_DDL = (
    "ad_id string, url string, product_id string, product_name string, selling_points array<string>, "
    "industry string, advertiser_id string, title string, play_count long, like_count long, "
    "published_at timestamp, duration_s double, error_class string, error_message string, payload string, "
    "present int, row_number long"
)
# Reasons decided after the crawl; a rerun of the filter keeps them instead of re-queuing the ad.
CRAWL_REASONS = ("too_long",)  # when the filter itself passed the ad, only the probe can have said so
PENDING = "pending"


@dataclass
class FilterResult:
    manifest: str
    crawl_date: str
    rows: int
    landed: int
    quarantined: int
    by_error_class: dict[str, int]
    filtered: int
    by_reason: dict[str, int]
    pending: int
    kept_from_earlier_runs: int
    still_quarantined: int  # ads whose crawl failure stands (ingest.crawl.rerun): not fetched again
    changed: bool  # some table got a new version
    versions: dict[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_manifest_spark(spark: SparkSession, uri: str, storage: dict[str, str] | None = None) -> DataFrame:
    """The manifest as one JSON object text per row (``_json``) or a row's raw text (``_corrupt``), in file
    order. Nothing is inferred: the checks type every value of every row by itself, so one odd row cannot
    change how the others are read. CSV is RFC 4180 (doubled quotes, quoted newlines); a row with the wrong
    number of fields is ``_corrupt``. A Parquet or CSV file without the required columns is refused whole.
    ``storage``: the lake's storage options, for a manifest on ``s3://``."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fmt = manifest_format(uri)
    none = F.lit(None).cast("string")
    if fmt == "jsonl":
        lines = read_text(spark, uri, storage).where(F.trim(F.col("value")) != "")
        return lines.select(F.col("value").alias("_json"), none.alias("_corrupt"))
    if fmt == "csv":
        header = csv_header(uri, storage)
        require_columns(uri, header)
        schema = T.StructType([T.StructField(c, T.StringType()) for c in header]
                              + [T.StructField("_corrupt", T.StringType())])
        reader = (spark.read.schema(schema).option("header", True).option("enforceSchema", True)
                  .option("multiLine", True).option("quote", '"').option("escape", '"').option("mode", "PERMISSIVE")
                  .option("columnNameOfCorruptRecord", "_corrupt"))
        df = read_csv(reader, spark, uri, storage)
    else:
        df = read_parquet(spark, uri, storage)
        require_columns(uri, df.columns)
        df = df.withColumn("_corrupt", none)
    kinds = dict(df.dtypes)
    fields = [(F.when(~F.isnan(c), F.col(c)) if kinds[c] in ("double", "float") else F.col(c)).alias(c)
              for c in (*REQUIRED, *OPTIONAL) if c in kinds]
    return df.select(F.when(F.col("_corrupt").isNull(), F.to_json(F.struct(*fields))).alias("_json"), "_corrupt")


def csv_header(uri: str, storage: dict[str, str] | None = None) -> list[str]:
    fs, path = arrow_fs(uri, storage)
    with fs.open_input_stream(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace",
                                                               newline="") as f:
        return next(csv.reader(f), [])


def _kept(df: DataFrame) -> DataFrame:
    """Computed once and kept by the executors. Not a local checkpoint: that cuts the lineage, so losing an
    executor (a killed worker) would fail the job instead of recomputing the lost partitions."""
    from pyspark import StorageLevel

    return df.persist(StorageLevel.MEMORY_AND_DISK)


def with_row_numbers(df: DataFrame) -> DataFrame:
    """0-based row position in the manifest, contiguous and in file order, without an RDD round trip."""
    from pyspark.sql import functions as F

    df = df.withColumn("_pid", F.spark_partition_id()).withColumn("_mid", F.monotonically_increasing_id())
    df = _kept(df)  # counted once; a lost partition is recomputed with the same ids (the read is deterministic)
    counts = sorted((r["_pid"], r["count"]) for r in df.groupBy("_pid").count().collect())
    offsets, total = [], 0
    for pid, n in counts:
        offsets.append((pid, total))
        total += n
    spark = df.sparkSession
    offsets_df = spark.createDataFrame(offsets or [(0, 0)], "_opid int, _offset long")
    low_bits = (1 << 33) - 1  # monotonically_increasing_id = partition id << 33 | position in partition
    return (df.join(F.broadcast(offsets_df), F.col("_pid") == F.col("_opid"))
            .withColumn("row_number", F.col("_offset") + F.col("_mid").bitwiseAND(F.lit(low_bits)))
            .drop("_pid", "_mid", "_opid", "_offset"))


def _checker(rules: UrlRules):
    def check(batches):
        for pdf in batches:
            raw = parse_json_rows([None if pd.isna(v) else v for v in pdf["_json"]],
                                  [None if pd.isna(v) else v for v in pdf["_corrupt"]])
            out = check_rows(raw, rules)
            out["row_number"] = pdf["row_number"].to_numpy()
            yield out
    return check


def decide(valid: DataFrame, settings) -> DataFrame:
    """Each valid ad's fate: a filter reason, or pending for the crawl. First reason wins."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    conf = settings.ingest
    by_url = Window.partitionBy("url").orderBy("row_number")
    df = valid.withColumn("_url_rank", F.row_number().over(by_url))
    eng = conf.engagement
    if eng.mode == "threshold":
        df = df.withColumn("_min_plays", F.lit(eng.min_play_count).cast("long"))
    else:
        industry = F.coalesce(F.col("industry"), F.lit("\u0000none"))
        cut = (df.where(F.col("play_count").isNotNull()).groupBy(industry.alias("_ind"))
               .agg(F.percentile_approx("play_count", eng.percentile, 10_000).alias("_min_plays")))
        df = df.join(F.broadcast(cut), industry == F.col("_ind"), "left").drop("_ind")
    low = F.when(F.col("play_count").isNull(), F.lit(not eng.keep_unknown)).otherwise(
        F.col("play_count") < F.col("_min_plays"))
    reason = (F.when(F.col("_url_rank") > 1, "duplicate_url")
              .when(F.col("duration_s") > conf.max_duration_s, "too_long")
              .when(F.coalesce(low, F.lit(False)), "low_engagement"))
    df = df.withColumn("reason", reason)
    if conf.max_ads_per_product:
        by_product = Window.partitionBy("product_id", F.col("reason").isNull()).orderBy(
            F.col("play_count").desc_nulls_last(), "row_number")
        df = df.withColumn("_product_rank", F.row_number().over(by_product)).withColumn(
            "reason", F.when(F.col("reason").isNull() & (F.col("_product_rank") > conf.max_ads_per_product),
                             "product_cap").otherwise(F.col("reason")))
    return df.withColumn("status", F.when(F.col("reason").isNull(), PENDING).otherwise("filtered"))


def _keep_crawl_outcomes(lake: Lake, decisions: pa.Table, crawl_date: dt.date) -> tuple[pa.Table, int, int]:
    """A rerun must not undo the crawl: pending ads that already have an outcome keep it, and ads whose
    crawl failed stay in ``ops.quarantine`` unless ``ingest.crawl.rerun`` says to fetch them again."""
    pending = decisions.filter(pc.equal(decisions["status"], PENDING))
    standing, stale = standing_failures(lake, crawl_date, dict(zip(pending["ad_id"].to_pylist(),
                                                                    pending["source_uri"].to_pylist(), strict=True)))
    Quarantine(lake).resolve(CRAWL_STAGE, stale)  # their ads are filtered now, or gone from the manifest
    if standing:
        decisions = decisions.filter(pc.invert(pc.is_in(decisions["ad_id"], pa.array(sorted(standing)))))
    decisions, kept = _keep_done(lake, decisions, crawl_date)
    return decisions, kept, len(standing)


def _keep_done(lake: Lake, decisions: pa.Table, crawl_date: dt.date) -> tuple[pa.Table, int]:
    if not lake.exists(ADS):
        return decisions, 0
    current = lake.read(ADS, where=f"crawl_date = {sql_literal(crawl_date)}")
    done = current.filter(pc.or_(pc.equal(current["status"], "selected"),
                                 pc.is_in(current["reason"], pa.array(CRAWL_REASONS))))
    if done.num_rows == 0:
        return decisions, 0
    done_ids = done["ad_id"]
    still = decisions.filter(pc.and_(pc.equal(decisions["status"], PENDING), pc.is_in(decisions["ad_id"], done_ids)))
    keep = done.filter(pc.is_in(done["ad_id"], still["ad_id"]))
    rest = decisions.filter(pc.invert(pc.is_in(decisions["ad_id"], keep["ad_id"])))
    return pa.concat_tables([rest, keep.select(rest.column_names).cast(rest.schema)]), keep.num_rows


def run_filter(lake: Lake, manifest_uri: str, crawl_date: dt.date) -> FilterResult:
    try:
        return _run_filter(lake, manifest_uri, crawl_date)
    finally:
        spark_session(lake.settings).catalog.clearCache()  # what _kept holds, once the tables are written


def _run_filter(lake: Lake, manifest_uri: str, crawl_date: dt.date) -> FilterResult:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    settings = lake.settings
    spark = spark_session(settings)
    quarantine = Quarantine(lake)
    partition = crawl_date.isoformat()
    before = [lake.latest_version(t) for t in (CRAWL_MANIFEST, ADS, QUARANTINE)]
    try:
        raw = read_manifest_spark(spark, manifest_uri, lake.storage_options)
    except ManifestError as e:
        quarantine.add([QuarantineRecord(STAGE, f"{partition}/{manifest_uri}", e.error_class, str(e), partition)])
        raise
    except Exception as e:  # unreadable file (not Parquet, bad encoding, missing)
        err = ManifestError(f"{manifest_uri}: cannot be read: {str(e).splitlines()[0][:500]}")
        quarantine.add([QuarantineRecord(STAGE, f"{partition}/{manifest_uri}", err.error_class, str(err), partition)])
        raise err from e

    numbered = with_row_numbers(raw)
    if manifest_format(manifest_uri) == "csv":  # a multi-line CSV is read by one task; check it in parallel
        numbered = numbered.repartition(int(spark.conf.get("spark.sql.shuffle.partitions")))
    checked = _kept(numbered.mapInPandas(_checker(UrlRules.of(settings.ingest)), CHECKED_DDL))
    mask = checked.agg(F.bit_or("present").alias("m")).first()["m"]
    if mask is not None and missing_required(mask):  # JSONL: no row at all names a required field
        err = ManifestError(f"{manifest_uri}: no row has required field(s) {missing_required(mask)}")
        quarantine.add([QuarantineRecord(STAGE, f"{partition}/{manifest_uri}", err.error_class, str(err), partition)])
        raise err
    checked = checked.drop("present")
    ok = checked.where(F.col("error_class").isNull())
    # Materialised once: the landed rows, the decisions and the rejects all derive from it.
    ranked = ok.withColumn("_id_rank", F.row_number().over(Window.partitionBy("ad_id").orderBy("row_number")))
    ranked = _kept(ranked)
    valid = ranked.where(F.col("_id_rank") == 1).drop("_id_rank", "error_class", "error_message", "payload")
    duplicates = (ranked.where(F.col("_id_rank") > 1)
                  .withColumn("error_class", F.lit("duplicate_ad_id"))
                  .withColumn("error_message", F.concat(F.lit("ad_id '"), F.col("ad_id"),
                                                        F.lit("' already occurs earlier in this manifest")))
                  .withColumn("payload", F.to_json(F.struct(*TYPED_COLUMNS)))
                  .drop("_id_rank"))
    rejected = checked.where(F.col("error_class").isNotNull()).unionByName(duplicates)

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = [F.lit(crawl_date).alias("crawl_date"), F.lit(now).cast("timestamp").alias("landed_at"),
             F.lit(lake.ctx.run_id).alias("run_id"), F.lit(manifest_uri).alias("manifest_uri")]
    staging = f"{settings.lake.staging_uri.rstrip('/')}/filter_manifest/{lake.ctx.run_id.replace(':', '_')}"
    def stage(df: DataFrame, name: str) -> pa.Table:  # Spark writes Parquet to staging; delta-rs commits it
        return stage_parquet(df, f"{staging}/{name}", lake.storage_options)

    try:
        landed = stage(valid.select(*valid.columns, *stamp), "crawl_manifest")
        decided = decide(valid, settings).select(
            "ad_id", F.lit(crawl_date).alias("crawl_date"), "product_id", F.lit(None).cast("string").alias("video_id"),
            "status", "reason", F.col("url").alias("source_uri"), F.lit(now).cast("timestamp").alias("updated_at"),
            F.lit(lake.ctx.run_id).alias("run_id"))
        decisions = stage(decided, "ads")
        bad = stage(rejected.select("row_number", "ad_id", "error_class", "error_message", "payload"), "rejected")
    finally:
        Staging(staging, lake.storage_options).remove()

    manifest_write = lake.overwrite_partition(CRAWL_MANIFEST, landed.select(CRAWL_MANIFEST.schema.names),
                                              {"crawl_date": crawl_date})
    decisions, kept, standing = _keep_crawl_outcomes(lake, decisions.select(ADS.schema.names), crawl_date)
    ads_write = lake.overwrite_partition(ADS, decisions, {"crawl_date": crawl_date})

    records = [QuarantineRecord(STAGE, f"{partition}/{r['ad_id'] or '-'}@row{r['row_number']}", r["error_class"],
                                r["error_message"], partition, r["payload"]) for r in bad.to_pylist()]
    if records:
        quarantine.add(records, deterministic=True)
    # Entries of this crawl date that this landing no longer rejects were fixed upstream.
    still_bad = {r.entity_key for r in records}
    stale = quarantine.entries(stage=STAGE, partition=partition)["entity_key"].to_pylist()
    quarantine.resolve(STAGE, [k for k in stale if k not in still_bad])

    by_class = count_values(bad["error_class"].to_pylist())
    statuses = decisions["status"]
    return FilterResult(
        manifest=manifest_uri, crawl_date=partition, rows=landed.num_rows + bad.num_rows, landed=landed.num_rows,
        quarantined=bad.num_rows, by_error_class=by_class,
        filtered=int(pc.sum(pc.equal(statuses, "filtered")).as_py() or 0),
        by_reason=count_values(decisions["reason"].to_pylist()), pending=int(pc.sum(pc.equal(statuses, PENDING)).as_py() or 0),
        kept_from_earlier_runs=kept, still_quarantined=standing,
        changed=[lake.latest_version(t) for t in (CRAWL_MANIFEST, ADS, QUARANTINE)] != before,
        versions={CRAWL_MANIFEST.name: manifest_write.version, ADS.name: ads_write.version})
