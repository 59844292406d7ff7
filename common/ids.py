"""Ids that clients hold as opaque strings (the contract) but that are bigints in our tables: products,
drivers, users. One rule for every place that turns one into a primary key."""

import re

# At most 18 digits: always within PostgreSQL's bigint. A longer number would reach the database as a
# numeric and fail there (a 500) instead of naming nothing (a 404 or a 400).
_BIGINT_ID = re.compile(r"[0-9]{1,18}")


def bigint_id(value) -> int | None:
    """The primary key a client's id names, or None when it can name none. ASCII digits only:
    str.isdigit() also accepts "²", which int() then refuses; signs, spaces and newlines are refused too."""
    if not isinstance(value, str) or not _BIGINT_ID.fullmatch(value):
        return None
    return int(value)
