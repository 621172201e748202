"""Synthetic ad corpora: real media with ground truth, and metadata-only manifests for scale tests."""

from adlake.synth.corpus import CorpusSummary, generate, probe, write_manifest
from adlake.synth.metadata import generate_metadata_manifest

__all__ = ["CorpusSummary", "generate", "generate_metadata_manifest", "probe", "write_manifest"]
