"""The manifest filter on Spark: contract checks, dedup, engagement, duration and per-product caps.

Spark reads the manifest, runs the pandera contract checks of ``ingest.manifest`` on each partition
(``mapInPandas``), finds duplicate ad ids and URLs with windows, and decides each ad's fate. Spark
writes Parquet to the staging area; delta-rs commits it as the crawl date's partition of
``bronze.crawl_manifest`` (valid rows) and ``silver.ads`` (filtered with a reason, or ``pending`` until
the crawl gives it a video). Rows that break the contract go to ``ops.quarantine``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from adlake.ingest.manifest import (
    OPTIONAL,
    REQUIRED,
    STAGE,
    TYPED_COLUMNS,
    ManifestError,
    check_rows,
    manifest_format,
)
from adlake.lake import Lake, Quarantine, QuarantineRecord, count_values
from adlake.lake.sql import sql_literal
from adlake.spark import spark_session
from schemas.registry import ADS, CRAWL_MANIFEST

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CHECKED_DDL = (
    "ad_id string, url string, product_id string, product_name string, selling_points array<string>, "
    "industry string, advertiser_id string, title string, play_count long, like_count long, "
    "published_at timestamp, duration_s double, error_class string, error_message string, payload string, "
    "row_number long"
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
    versions: dict[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_manifest_spark(spark: SparkSession, uri: str) -> DataFrame:
    from pyspark.sql import functions as F

    fmt = manifest_format(uri)
    if fmt == "parquet":
        df = spark.read.parquet(uri)
    elif fmt == "csv":
        df = spark.read.option("header", True).option("inferSchema", False).option("mode", "PERMISSIVE").csv(uri)
    else:
        df = (spark.read.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_unparseable")
              .json(uri))
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ManifestError(f"{uri}: required column(s) {missing} missing; found {df.columns}")
    for c in OPTIONAL:
        if c not in df.columns:
            df = df.withColumn(c, F.lit(None).cast("string"))
    keep = [*REQUIRED, *OPTIONAL] + (["_unparseable"] if "_unparseable" in df.columns else [])
    return df.select(*keep)


def with_row_numbers(df: DataFrame) -> DataFrame:
    """0-based row position in the manifest, contiguous and in file order, without an RDD round trip."""
    from pyspark.sql import functions as F

    df = df.withColumn("_pid", F.spark_partition_id()).withColumn("_mid", F.monotonically_increasing_id())
    df = df.localCheckpoint()  # the ids must not be recomputed differently by later actions
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


def _checker(allowed_schemes: list[str]):
    def check(batches):
        for pdf in batches:
            row_numbers = pdf.pop("row_number").to_numpy()
            raw = pdf.astype(object).where(pdf.notna(), None).reset_index(drop=True)
            out = check_rows(raw, allowed_schemes)
            out["row_number"] = row_numbers
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


def _stage(df: DataFrame, path: str) -> pa.Table:
    """Spark writes Parquet to the staging area; the table comes back through pyarrow for delta-rs."""
    df.write.mode("overwrite").parquet(path)
    return pads.dataset(path, format="parquet").to_table()


def _keep_crawl_outcomes(lake: Lake, decisions: pa.Table, crawl_date: dt.date) -> tuple[pa.Table, int]:
    """A rerun must not undo the crawl: pending ads that already have an outcome keep it."""
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
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    settings = lake.settings
    spark = spark_session(settings)
    quarantine = Quarantine(lake)
    partition = crawl_date.isoformat()
    try:
        raw = read_manifest_spark(spark, manifest_uri)
    except ManifestError as e:
        quarantine.add([QuarantineRecord(STAGE, f"{partition}/{manifest_uri}", e.error_class, str(e), partition)])
        raise
    except Exception as e:  # unreadable file (not Parquet, bad encoding, missing)
        err = ManifestError(f"{manifest_uri}: cannot be read: {str(e).splitlines()[0][:500]}")
        quarantine.add([QuarantineRecord(STAGE, f"{partition}/{manifest_uri}", err.error_class, str(err), partition)])
        raise err from e

    numbered = with_row_numbers(raw)
    checked = numbered.mapInPandas(_checker(settings.ingest.allowed_schemes), CHECKED_DDL).localCheckpoint()
    ok = checked.where(F.col("error_class").isNull())
    # Materialised once: the landed rows, the decisions and the rejects all derive from it.
    ranked = ok.withColumn("_id_rank", F.row_number().over(Window.partitionBy("ad_id").orderBy("row_number")))
    ranked = ranked.localCheckpoint()
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
    try:
        landed = _stage(valid.select(*valid.columns, *stamp), f"{staging}/crawl_manifest")
        decided = decide(valid, settings).select(
            "ad_id", F.lit(crawl_date).alias("crawl_date"), "product_id", F.lit(None).cast("string").alias("video_id"),
            "status", "reason", F.col("url").alias("source_uri"), F.lit(now).cast("timestamp").alias("updated_at"),
            F.lit(lake.ctx.run_id).alias("run_id"))
        decisions = _stage(decided, f"{staging}/ads")
        bad = _stage(rejected.select("row_number", "ad_id", "error_class", "error_message", "payload"),
                     f"{staging}/rejected")
    finally:
        if "://" not in staging:
            shutil.rmtree(staging, ignore_errors=True)

    manifest_write = lake.overwrite_partition(CRAWL_MANIFEST, landed.select(CRAWL_MANIFEST.schema.names),
                                              {"crawl_date": crawl_date})
    decisions, kept = _keep_crawl_outcomes(lake, decisions.select(ADS.schema.names), crawl_date)
    ads_write = lake.overwrite_partition(ADS, decisions, {"crawl_date": crawl_date})

    records = [QuarantineRecord(STAGE, f"{partition}/{r['ad_id'] or '-'}@row{r['row_number']}", r["error_class"],
                                r["error_message"], partition, r["payload"]) for r in bad.to_pylist()]
    if records:
        quarantine.add(records)
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
        kept_from_earlier_runs=kept,
        versions={CRAWL_MANIFEST.name: manifest_write.version, ADS.name: ads_write.version})
