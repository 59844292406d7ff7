"""Money is stored and sent as integers in minor units (1250 = 12.50 EUR); people read it formatted, here."""

# ISO 4217 currencies without minor units; everything else we sell in has two decimals.
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX"})


def money(amount: int | None, currency: str) -> str:
    """`money(2250, "EUR")` -> "22.50 EUR"; "-" for no amount."""
    if amount is None:
        return "-"
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f"{amount} {currency}"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    return f"{sign}{amount // 100}.{amount % 100:02d} {currency}"
