# Seven calls of child_fn, for the process-tree tests.
def child_fn(n):
    return n + 1


for i in range(7):
    child_fn(i)
print("child done", flush=True)
