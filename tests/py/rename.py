# Calls before() under the interpreter's own name, renames the main thread
# (as prctl(PR_SET_NAME) would; /proc works on every version without
# ctypes), calls after(), then executes /bin/true if argv[1] is "exec".
import os
import sys


def before():
    return 1


def after():
    return 2


before()
with open("/proc/self/comm", "w") as comm:
    comm.write("renamed-main")
after()
if sys.argv[1:] == ["exec"]:
    os.execv("/bin/true", ["true"])
