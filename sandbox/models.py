from django.db import models

from common.money import money


class LedgerEntry(models.Model):
    """The sandbox gateway's own books: what an outside gateway records on its side, not Courier's records.

    Unique per idempotency key, as a real gateway guarantees: the same key never charges twice. Kept in
    PostgreSQL, not Redis: the books must be as durable as the orders they are reconciled with, and an
    evicted key would let a retried charge book twice.
    """

    class Kind(models.TextChoices):
        CHARGE = "charge"
        REFUND = "refund"

    idempotency_key = models.CharField(max_length=255, unique=True)
    reference = models.CharField(
        max_length=64, db_index=True, help_text="What the merchant says it is for: the order id."
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"

    def __str__(self):
        return f"{self.kind} {money(self.amount, self.currency)} ({self.idempotency_key})"
