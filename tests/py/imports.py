# Imports found and not found, for pytap's tests.
import colorsys
import json

try:
    import no_such_module_xyz  # noqa: F401
except ImportError:
    pass
json.dumps([colorsys.rgb_to_hsv(0.1, 0.2, 0.3)])
