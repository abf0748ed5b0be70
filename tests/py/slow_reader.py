# Reads its standard input to the end as fast as it can, except that every
# EVERY ms (argv[2]) it stops reading for PAUSE ms (argv[1]): a reader that
# pauses, as `less` or a busy log shipper does. Prints the lines it read.
import sys
import time

pause, every = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000
total = 0
last = time.monotonic()
while True:
    chunk = sys.stdin.buffer.raw.read(1 << 20)
    if not chunk:
        break
    total += chunk.count(b"\n")
    if time.monotonic() - last >= every:
        time.sleep(pause)
        last = time.monotonic()
print(total)
