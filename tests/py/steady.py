# Calls work() N times in a steady stream (about 0.6 s), across many
# timer ticks, and prints N: a script adding up per-tick counts must
# find exactly N.
import sys
import time


def work():
    pass


n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
end = time.monotonic() + 0.6
done = 0
while done < n:
    work()
    done += 1
    if done % 1000 == 0:
        # Spread the calls over the ticks.
        rest = end - time.monotonic()
        if rest > 0:
            time.sleep(rest / ((n - done) / 1000 + 1))
print(done)
