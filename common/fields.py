import math

from rest_framework import serializers


class JSONNumberField(serializers.FloatField):
    """A JSON number and nothing else: DRF's FloatField also takes `true` (as 1.0), `"52.5"` and NaN/Infinity,
    none of which a client sending coordinates means."""

    default_error_messages = {"invalid": "A finite JSON number is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value
