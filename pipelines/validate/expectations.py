"""The expectation suites of the raw events and catalog rows, as code (GX 1.x).

They run on the *prepared* frame of a partition (see ``pipelines.validate.rows.prepare_events``):
the raw text columns with blank keys turned into nulls, plus typed and looked-up columns
(``_ts_us``, ``_value``, ``_known_item``, ``_accepted_before``). Each expectation's
``meta["reason"]`` is the name a failing row is quarantined under. GX is imported only when a
suite is built, never at DAG-parse time.
"""

from __future__ import annotations

from datetime import date, timedelta

from pipelines.core.contracts import (
    EVENT_REQUIRED,
    EVENT_TYPES,
    ID_CONTROL_CHARACTERS,
    ITEM_REQUIRED,
    MAX_ID_CHARS,
    NUL_CHARACTER,
    day_start_us,
)
from pipelines.core.settings import ValidateSettings

DUPLICATE = "duplicate_event_id"
UNIQUE_IN_PARTITION = "event_id_unique_in_partition"
# Expectations that describe the partition but do not quarantine rows: within-partition
# duplicates are resolved by keeping the first delivery, the rest count as duplicates.
REPORT_ONLY = {UNIQUE_IN_PARTITION}


def _storable(ids: tuple[str, ...], texts: tuple[str, ...]) -> list:
    """What every store and model can hold: short printable ids, free text without NUL."""
    import great_expectations.expectations as gxe

    suite = []
    for c in ids:
        suite += [
            gxe.ExpectColumnValuesToNotMatchRegex(column=c, regex=ID_CONTROL_CHARACTERS,
                                                  meta={"reason": f"control_character_in_{c}"}),
            gxe.ExpectColumnValueLengthsToBeBetween(column=c, max_value=MAX_ID_CHARS,
                                                    meta={"reason": f"{c}_too_long"}),
        ]
    return suite + [gxe.ExpectColumnValuesToNotMatchRegex(column=c, regex=NUL_CHARACTER,
                                                          meta={"reason": f"nul_in_{c}"})
                    for c in texts]


def event_expectations(ds: date, cfg: ValidateSettings) -> list:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    def meta(reason: str) -> dict:
        return {"reason": reason}

    end_us = day_start_us(ds + timedelta(days=1))
    earliest_us = day_start_us(ds) - int(cfg.lateness_hours * 3_600_000_000)
    rate, view = Column("event_type") == "rate", Column("event_type") == "view"
    suite = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, meta=meta(f"missing_{c}"))
        for c in EVENT_REQUIRED
    ]
    suite += [
        gxe.ExpectColumnValuesToBeNull(column="_malformed", meta=meta("malformed_line")),
        gxe.ExpectColumnValuesToNotBeNull(column="_ts_us", row_condition=Column("ts").is_not_null(),
                                          meta=meta("unparseable_ts")),
        gxe.ExpectColumnValuesToNotBeNull(column="_value",
                                          row_condition=Column("value").is_not_null(),
                                          meta=meta("unparseable_value")),
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES),
                                        meta=meta("unknown_event_type")),
        gxe.ExpectColumnValuesToBeBetween(column="_ts_us", max_value=end_us - 1,
                                          meta=meta("ts_in_future")),
        gxe.ExpectColumnValuesToBeBetween(column="_ts_us", min_value=earliest_us,
                                          meta=meta("ts_too_late")),
        gxe.ExpectColumnValuesToNotBeNull(column="value", row_condition=rate,
                                          meta=meta("missing_rating")),
        gxe.ExpectColumnValuesToBeBetween(column="_value", min_value=cfg.rating_min,
                                          max_value=cfg.rating_max, row_condition=rate,
                                          meta=meta("rating_out_of_scale")),
        gxe.ExpectColumnValuesToBeBetween(column="_value", min_value=0, row_condition=view,
                                          meta=meta("negative_dwell")),
        gxe.ExpectColumnValuesToBeInSet(column="_known_item", value_set=[True],
                                        meta=meta("unknown_item")),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", max_value=cfg.max_text_chars,
                                                meta=meta("text_too_long")),
        gxe.ExpectColumnValuesToBeInSet(column="_accepted_before", value_set=[False],
                                        meta=meta(DUPLICATE)),
        gxe.ExpectColumnValuesToBeUnique(column="event_id",
                                         meta=meta(UNIQUE_IN_PARTITION)),
        *_storable(("event_id", "user_id", "item_id"), ("text",)),
    ]
    return suite


def item_expectations(ds: date) -> list:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    end_us = day_start_us(ds + timedelta(days=1))
    suite = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"reason": f"missing_{c}"})
        for c in ITEM_REQUIRED
    ]
    suite += [
        gxe.ExpectColumnValuesToBeNull(column="_malformed", meta={"reason": "malformed_line"}),
        gxe.ExpectColumnValuesToNotBeNull(
            column="_updated_at_us", row_condition=Column("updated_at").is_not_null(),
            meta={"reason": "unparseable_updated_at"}),
        gxe.ExpectColumnValuesToBeBetween(column="_updated_at_us", max_value=end_us - 1,
                                          meta={"reason": "updated_at_in_future"}),
        gxe.ExpectColumnValuesToNotBeNull(
            column="_available", row_condition=Column("available").is_not_null(),
            meta={"reason": "unparseable_available"}),
        *_storable(("item_id",), ("title", "description", "category", "tags")),
    ]
    return suite
