# Explicit collections of known garbage, for pytap's tests. Automatic
# collection is off, so between the two audit events around each
# gc.collect() call exactly one collection happens.
import gc
import sys

gc.disable()
for generation in (0, 1, 2, 2):
    for _ in range(10):
        cycle = []
        cycle.append(cycle)
    del cycle
    sys.audit("pytap.gc", generation)
    found = gc.collect(generation)
    sys.audit("pytap.collected", found)
