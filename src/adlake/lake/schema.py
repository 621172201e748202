"""Casting incoming data to a table's declared schema, refusing anything lossy."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from schemas import TableSpec


class SchemaDriftError(ValueError):
    """Data does not match the table's declared schema."""


def _lossless(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether ``found`` values can always be represented in ``expected`` (a safe cast still checks values)."""
    if found == expected or pa.types.is_null(found):
        return True
    if pa.types.is_dictionary(found):
        return _lossless(found.value_type, expected)
    if pa.types.is_integer(found) and pa.types.is_integer(expected):
        # Python and pandas ints arrive as int64: the safe cast checks that every value fits.
        return True
    if pa.types.is_floating(found) and pa.types.is_floating(expected):
        return expected.bit_width >= found.bit_width
    if pa.types.is_string(expected) or pa.types.is_large_string(expected):
        # DataFusion reads strings back as string_view.
        return pa.types.is_string(found) or pa.types.is_large_string(found) or pa.types.is_string_view(found)
    if pa.types.is_timestamp(found) and pa.types.is_timestamp(expected):
        # Unit changes are value-checked by the safe cast; naive times are read as UTC.
        return found.tz == expected.tz or (found.tz is None and expected.tz in ("UTC", "+00:00"))
    if pa.types.is_date(found) and pa.types.is_date(expected):
        return True
    if (pa.types.is_list(found) or pa.types.is_large_list(found) or pa.types.is_fixed_size_list(found)) and (
        pa.types.is_list(expected) or pa.types.is_large_list(expected) or pa.types.is_fixed_size_list(expected)
    ):
        return _lossless(found.value_type, expected.value_type)
    return False


def conform(spec: TableSpec, data: pa.Table | pa.RecordBatch) -> pa.Table:
    """Return ``data`` cast to ``spec.schema``; raise :class:`SchemaDriftError` naming the column otherwise."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    found_names = data.column_names
    dupes = {n for n in found_names if found_names.count(n) > 1}
    if dupes:
        raise SchemaDriftError(f"{spec.name}: duplicate column(s) {sorted(dupes)}")
    missing = [n for n in spec.schema.names if n not in found_names]
    extra = [n for n in found_names if n not in spec.schema.names]
    problems = [f"column '{n}' missing (expected {spec.schema.field(n).type})" for n in missing]
    problems += [f"column '{n}' is not in the schema (found {data.schema.field(n).type})" for n in extra]
    columns = []
    for f in spec.schema:
        if f.name in missing:
            continue
        column = data.column(f.name)
        if column.type != f.type:
            if not _lossless(column.type, f.type):
                problems.append(f"column '{f.name}' expected {f.type}, found {column.type}")
                continue
            try:
                column = pc.cast(column, f.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                problems.append(f"column '{f.name}' expected {f.type}, found {column.type} "
                                f"with values that do not fit: {e}")
                continue
        if not f.nullable and column.null_count:
            problems.append(f"column '{f.name}' is required but has {column.null_count} null value(s)")
            continue
        columns.append(column)
    if problems:
        raise SchemaDriftError(f"{spec.name} (schema v{spec.version}): " + "; ".join(problems))
    return pa.Table.from_arrays(columns, schema=spec.schema)
