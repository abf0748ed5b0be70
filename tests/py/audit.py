# Audit events with known arguments, for pytap's tests.
import sys

sys.audit("x.y", 1, "a", b"b", None, (2, 3.5))
sys.audit("pytap.values", -5, 2**70, True, False, "h\u00e9llo \u20ac", "x" * 300, (1, 2, 3, 4, 5), 1.5e300, 0)
sys.audit("pytap.more", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
sys.audit("pytap.none")
