# The HOWTO's call_stack.d workload: start() calls function_1 ... function_5,
# some of them nested; calls made before start() (imports, module code)
# must not be listed. With `--oracle FILE`, start() runs under
# sys.setprofile and each call and return of this file is written to FILE
# as `E|R name line depth`: what call_stack.d must print.
import sys


def function_1():
    function_3()


def function_2():
    function_1()


def function_3():
    pass


def function_4():
    pass


def function_5():
    dummy = 1
    dummy = dummy


def start():
    function_1()
    function_2()
    function_3()
    function_4()
    function_5()


def outside():
    function_3()


outside()
if len(sys.argv) > 2 and sys.argv[1] == "--oracle":
    import setprofile_oracle

    setprofile_oracle.record(start, __file__, sys.argv[2])
else:
    start()
outside()
