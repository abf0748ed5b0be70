# Runs another interpreter (argv[1]) on argv[2] with subprocess, or
# executes it in place with "exec" as argv[3].
import os
import subprocess
import sys


def parent_fn():
    if sys.argv[3:] == ["exec"]:
        os.execv(sys.argv[1], [sys.argv[1], sys.argv[2]])
    subprocess.run([sys.argv[1], sys.argv[2]], check=True)


parent_fn()
