"""The lake: Delta tables declared in ``schemas/``, written transactionally through delta-rs."""

from adlake.lake.quarantine import Quarantine, QuarantineRecord
from adlake.lake.schema import SchemaDriftError, conform
from adlake.lake.tables import DuplicateKeyError, Lake, WriteResult, count_values

__all__ = ["DuplicateKeyError", "Lake", "Quarantine", "QuarantineRecord", "SchemaDriftError", "WriteResult",
           "conform", "count_values"]
