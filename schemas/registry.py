"""Every table of the contract, in pipeline order."""

from __future__ import annotations

import pyarrow as pa

from schemas import TIMESTAMP, TableSpec, col

STR = pa.string()
F64 = pa.float64()
I32 = pa.int32()
I64 = pa.int64()

RUN_ID = col("run_id", STR, "adlake run id of the job that wrote the row")

CRAWL_MANIFEST = TableSpec(
    name="bronze.crawl_manifest",
    description="Crawl manifests as landed, one partition per crawl date; rows that break the contract go to ops.quarantine.",
    schema=pa.schema([
        col("ad_id", STR, "ad id, unique within a crawl batch", nullable=False),
        col("crawl_date", pa.date32(), "crawl batch date", nullable=False),
        col("url", STR, "where the video is fetched from", nullable=False),
        col("product_id", STR, "advertised product", nullable=False),
        col("product_name", STR, "product display name", nullable=False),
        col("selling_points", pa.list_(STR), "product selling points"),
        col("industry", STR, "industry label"),
        col("advertiser_id", STR, "advertiser"),
        col("title", STR, "ad title"),
        col("play_count", I64, "plays at crawl time"),
        col("like_count", I64, "likes at crawl time"),
        col("published_at", TIMESTAMP, "publication time"),
        col("duration_s", F64, "duration claimed by the crawler, if known"),
        col("manifest_uri", STR, "manifest file the row came from", nullable=False),
        col("row_number", I64, "0-based row in the manifest file", nullable=False),
        col("landed_at", TIMESTAMP, "when the row was landed"),
        RUN_ID,
    ]),
    keys=("ad_id", "crawl_date"),
    partition_by=("crawl_date",),
    audit_columns=("run_id", "landed_at"),
)

ADS = TableSpec(
    name="silver.ads",
    description="Every valid manifest ad, selected with a video or filtered with a reason.",
    schema=pa.schema([
        col("ad_id", STR, "ad id", nullable=False),
        col("crawl_date", pa.date32(), "crawl batch date", nullable=False),
        col("product_id", STR, "advertised product", nullable=False),
        col("video_id", STR, "sha256 of the video bytes; null when filtered"),
        col("status", STR, "'selected' or 'filtered'", nullable=False),
        col("reason", STR, "why the ad was filtered; null when selected"),
        col("source_uri", STR, "manifest url"),
        col("updated_at", TIMESTAMP, "last status change"),
        RUN_ID,
    ]),
    keys=("ad_id", "crawl_date"),
    partition_by=("crawl_date",),
    audit_columns=("run_id", "updated_at"),
)

VIDEOS = TableSpec(
    name="bronze.videos",
    description="Downloaded, probed, content-addressed videos.",
    schema=pa.schema([
        col("video_id", STR, "sha256 of the bytes", nullable=False),
        col("source_uri", STR, "first url the bytes were fetched from", nullable=False),
        col("media_uri", STR, "blob in the media store", nullable=False),
        col("bytes", I64, "file size", nullable=False),
        col("duration_s", F64, "container duration"),
        col("width", I32, "display width (rotation applied)"),
        col("height", I32, "display height (rotation applied)"),
        col("fps", F64, "average frame rate"),
        col("vcodec", STR, "video codec"),
        col("acodec", STR, "audio codec; null without audio"),
        col("has_audio", pa.bool_(), "whether an audio stream exists", nullable=False),
        col("format_name", STR, "container format"),
        col("probed_at", TIMESTAMP, "probe time"),
        RUN_ID,
    ]),
    keys=("video_id",),
    audit_columns=("run_id", "probed_at"),
)

ASR_SENTENCES = TableSpec(
    name="silver.asr_sentences",
    schema=pa.schema([
        col("video_id", STR, "video", nullable=False),
        col("idx", I32, "sentence order", nullable=False),
        col("start_s", F64, "start time", nullable=False),
        col("end_s", F64, "end time", nullable=False),
        col("text", STR, "sentence text", nullable=False),
        col("avg_logprob", F64, "mean token log probability"),
        col("confidence", F64, "mean word probability (alignment score when aligned)"),
        RUN_ID,
    ]),
    keys=("video_id", "idx"),
    version=2,  # v2 (issue 4): + confidence
)

ASR_WORDS = TableSpec(
    name="silver.asr_words",
    schema=pa.schema([
        col("video_id", STR, "video", nullable=False),
        col("sentence_idx", I32, "sentence", nullable=False),
        col("idx", I32, "word order in the sentence", nullable=False),
        col("word", STR, "word", nullable=False),
        col("start_s", F64, "start time"),
        col("end_s", F64, "end time"),
        col("score", F64, "alignment or word probability"),
        RUN_ID,
    ]),
    keys=("video_id", "sentence_idx", "idx"),
)

SHOTS = TableSpec(
    name="silver.shots",
    schema=pa.schema([
        col("video_id", STR, "video", nullable=False),
        col("idx", I32, "shot order", nullable=False),
        col("start_s", F64, "start time", nullable=False),
        col("end_s", F64, "end time", nullable=False),
        col("transition", STR, "how the shot begins: 'start', 'cut' or 'dissolve'"),
        RUN_ID,
    ]),
    keys=("video_id", "idx"),
)

PARSED_VIDEOS = TableSpec(
    name="silver.parsed_videos",
    description="One row per video ads_parse finished: its outcome, soundtrack blobs and per-stage timings.",
    schema=pa.schema([
        col("video_id", STR, "video", nullable=False),
        col("status", STR, "'parsed' or 'filtered'", nullable=False),
        col("reason", STR, "why the video's ads are filtered ('clip_count', 'too_long'); null when parsed"),
        col("duration_s", F64, "container duration"),
        col("has_audio", pa.bool_(), "whether the video has an audio stream", nullable=False),
        col("voiceover", pa.bool_(), "confident speech covers enough of the ad", nullable=False),
        col("speech_s", F64, "seconds the VAD heard speech"),
        col("sentences", I32, "ASR sentences"),
        col("shots", I32, "shots"),
        col("clips", I32, "clips"),
        col("frames", I32, "frame rows (all roles)"),
        col("speech_audio_uri", STR, "16 kHz mono WAV in the media store; null without audio"),
        col("original_audio_uri", STR, "the original audio stream (Matroska) in the media store; null without audio"),
        col("asr_model", STR, "CTranslate2 Whisper model folder name"),
        col("decode_s", F64, "seconds decoding for shots and 1 fps frames (one pass)"),
        col("audio_s", F64, "seconds extracting the soundtrack"),
        col("asr_s", F64, "seconds of VAD + ASR"),
        col("write_s", F64, "seconds writing frame JPEGs and audio blobs"),
        col("parsed_at", TIMESTAMP, "when parsing finished"),
        RUN_ID,
    ]),
    keys=("video_id",),
    audit_columns=("run_id", "parsed_at"),
)

CLIPS = TableSpec(
    name="silver.clips",
    schema=pa.schema([
        col("clip_id", STR, "'<video_id>:<idx>'", nullable=False),
        col("video_id", STR, "video", nullable=False),
        col("idx", I32, "clip order", nullable=False),
        col("start_s", F64, "start time", nullable=False),
        col("end_s", F64, "end time", nullable=False),
        col("script", STR, "voiceover text of the clip"),
        col("source", STR, "'asr' or 'shot'", nullable=False),
        RUN_ID,
    ]),
    keys=("clip_id",),
)

FRAMES = TableSpec(
    name="silver.frames",
    schema=pa.schema([
        col("frame_id", STR, "'<clip_id>:<role>:<t_ms>'", nullable=False),
        col("clip_id", STR, "clip", nullable=False),
        col("video_id", STR, "video", nullable=False),
        col("t_s", F64, "timestamp in the video", nullable=False),
        col("role", STR, "'fps1', 'spatial' or 'temporal'", nullable=False),
        col("media_uri", STR, "JPEG in the media store", nullable=False),
        col("width", I32, "pixels"),
        col("height", I32, "pixels"),
        RUN_ID,
    ]),
    keys=("frame_id",),
)

EMBEDDINGS = TableSpec(
    name="silver.embeddings",
    schema=pa.schema([
        col("entity_id", STR, "frame, clip or audio window id", nullable=False),
        col("entity_type", STR, "'frame', 'clip', 'audio' or 'bgm'", nullable=False),
        col("encoder_id", STR, "encoder name + weights hash", nullable=False),
        col("vector", pa.list_(pa.float32()), "L2-normalised embedding", nullable=False),
        RUN_ID,
    ]),
    keys=("entity_id", "entity_type", "encoder_id"),
    partition_by=("entity_type",),
)

TOKENS = TableSpec(
    name="gold.tokens",
    schema=pa.schema([
        col("entity_id", STR, "embedded entity", nullable=False),
        col("entity_type", STR, "entity type", nullable=False),
        col("tokenizer_id", STR, "tokenizer name + registered version", nullable=False),
        col("codes", pa.list_(pa.int16()), "one code per level", nullable=False),
        col("tokens", STR, "codes written as token strings", nullable=False),
        RUN_ID,
    ]),
    keys=("entity_id", "entity_type", "tokenizer_id"),
    partition_by=("entity_type",),
)

AD_SEQUENCES = TableSpec(
    name="gold.ad_sequences",
    schema=pa.schema([
        col("ad_id", STR, "ad", nullable=False),
        col("tokenizer_id", STR, "tokenizer", nullable=False),
        col("sequence", STR, "the whole ad as one token string", nullable=False),
        RUN_ID,
    ]),
    keys=("ad_id", "tokenizer_id"),
)

SAMPLES = TableSpec(
    name="gold.samples",
    schema=pa.schema([
        col("sample_id", STR, "stable sample id: '<task>:<split>:<ad_id>[:<shuffle>]'", nullable=False),
        col("task", STR, "training task", nullable=False),
        col("split", STR, "split name", nullable=False),
        col("ad_id", STR, "the ad the sample is made from", nullable=False),
        col("messages", STR, "ShareGPT chat messages as JSON", nullable=False),
        col("source_versions", STR, "JSON of the input table versions", nullable=False),
        RUN_ID,
    ]),
    keys=("sample_id",),
    partition_by=("task",),
    version=2,  # v2 (issue 7): + ad_id
)

SPLIT_ASSIGNMENTS = TableSpec(
    name="gold.split_assignments",
    description="Where each selected ad went in the training sets, and why.",
    schema=pa.schema([
        col("ad_id", STR, "ad", nullable=False),
        col("product_id", STR, "product", nullable=False),
        col("advertiser_id", STR, "advertiser"),
        col("video_id", STR, "video", nullable=False),
        col("group_id", STR, "leak group: ads joined by product, advertiser, video or near-duplicate embedding"),
        col("split", STR, "'pretrain', 'finetune', 'test', 'test_distractor', 'dropped' or 'excluded'",
            nullable=False),
        col("reason", STR, "why the ad is in this split", nullable=False),
        col("source_versions", STR, "JSON of the input table versions, tokenizers and seed", nullable=False),
        RUN_ID,
    ]),
    keys=("ad_id",),
    partition_by=("split",),
)

BENCHMARK = TableSpec(
    name="gold.benchmark",
    description="The VC-LLM benchmark: each test ad's clips plus clips of other ads of the same product.",
    schema=pa.schema([
        col("sample_id", STR, "'<benchmark>:<ad_id>'", nullable=False),
        col("benchmark", STR, "benchmark name", nullable=False),
        col("ad_id", STR, "the test ad", nullable=False),
        col("product_id", STR, "its product", nullable=False),
        col("k", I32, "clips to select", nullable=False),
        col("candidates", STR, "JSON list of {label, clip_id, duration_s} in the order shown", nullable=False),
        col("truth", STR, "JSON list of {clip_id, script, subtitles, duration_s} in playing order",
            nullable=False),
        col("same_product_distractors", I32, "candidate clips from other ads of the product", nullable=False),
        col("messages", STR, "the task as ShareGPT chat messages (JSON)", nullable=False),
        col("source_versions", STR, "JSON of the input table versions, tokenizers and seed", nullable=False),
        RUN_ID,
    ]),
    keys=("sample_id",),
    partition_by=("benchmark",),
)

QUARANTINE = TableSpec(
    name="ops.quarantine",
    description="Inputs that could not be processed, one row per (stage, entity_key), with an error class.",
    schema=pa.schema([
        col("stage", STR, "pipeline stage that gave up on the entity", nullable=False),
        col("entity_key", STR, "what failed: an ad id, video id, manifest row …", nullable=False),
        col("error_class", STR, "stable machine-readable error class", nullable=False),
        col("message", STR, "human-readable error", nullable=False),
        col("attempts", I32, "runs that failed on this entity", nullable=False),
        col("first_seen", TIMESTAMP, "first failure", nullable=False),
        col("last_seen", TIMESTAMP, "latest failure", nullable=False),
        col("run_id", STR, "run of the latest failure", nullable=False),
        col("partition", STR, "batch the entity belongs to (e.g. crawl date)"),
        col("payload", STR, "the offending input as JSON, when small"),
        col("status", STR, "'open' or 'resolved'", nullable=False),
        col("resolved_at", TIMESTAMP, "when a later retry succeeded"),
    ]),
    keys=("stage", "entity_key"),
    audit_columns=(),
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        CRAWL_MANIFEST, ADS, VIDEOS, ASR_SENTENCES, ASR_WORDS, SHOTS, PARSED_VIDEOS, CLIPS, FRAMES,
        EMBEDDINGS, TOKENS, AD_SEQUENCES, SPLIT_ASSIGNMENTS, SAMPLES, BENCHMARK, QUARANTINE,
    )
}


def get(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None
