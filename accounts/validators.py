from django.core.exceptions import ValidationError


class DistinctCharactersValidator:
    """Refuse passwords made of a handful of repeated characters or only whitespace (`"        "`,
    `"aaaaaaaa"`), which pass Django's length, similarity, common-list and numeric validators."""

    def __init__(self, min_distinct: int = 5):
        self.min_distinct = min_distinct

    def validate(self, password, user=None):
        if len(set(password) - set(" \t\r\n\f\v\u00a0")) < self.min_distinct:
            raise ValidationError(
                f"This password needs at least {self.min_distinct} different characters besides spaces.",
                code="password_too_uniform",
            )

    def get_help_text(self):
        return f"Your password must contain at least {self.min_distinct} different characters besides spaces."
