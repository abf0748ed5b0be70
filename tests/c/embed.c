/* A program that embeds CPython through libpython3.X.so, as uwsgi or a game
 * engine would. pytap's tests use it to check that markers living in
 * libpython (not in the executable) are found and traced.
 *
 * Usage: embed-python 'python source'   (default: wait for stdin to close)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

int main(int argc, char **argv) {
    const char *code = argc > 1 ? argv[1] : "import sys; sys.stdin.read()";
    Py_Initialize();
    int rc = PyRun_SimpleString(code);
    if (Py_FinalizeEx() < 0) {
        return 120;
    }
    return rc == 0 ? 0 : 1;
}
