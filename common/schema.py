from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from rest_framework.serializers import ListSerializer


class AutoSchema(BaseAutoSchema):
    """Name components after their full nesting (`MeApi.OutputSerializer` → `MeApiOutput`), so the
    house style of nested InputSerializer/OutputSerializer classes never collides in the schema."""

    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction)
        cls = type(serializer.child if isinstance(serializer, ListSerializer) else serializer)
        if "." in cls.__qualname__ and not getattr(getattr(cls, "Meta", None), "ref_name", None):
            return cls.__qualname__.replace("Serializer", "").replace(".", "")
        return name
