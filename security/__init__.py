"""The attacks an API must refuse (OWASP API Security Top 10 as the checklist), one readable module per theme.

Tests here cross apps on purpose (an attack rarely respects layers); they are not production code, so the
import layers do not apply to them.
"""
