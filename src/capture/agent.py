# pytap's in-process agent: function events from a sys.monitoring tool
# (CPython 3.12 and later) or a profile function (3.8-3.11), and, on a
# build without markers, gc collections (gc.callbacks), imports and audit
# events (an audit hook), written to a ring file that pytap reads as they
# happen. Kept in the pytap binary; pytap puts it on the traced program's
# PYTHONPATH as `sitecustomize` and removes every trace of that from what
# the program sees.
#
# Rules it keeps (pytap's tests hold it to them):
# - it never raises into user code and never changes what the program does;
# - it starts no thread: pytap's heartbeat is checked from the callbacks;
# - when pytap is gone (stopped, killed) it unregisters its tool, frees its
#   memory and removes its ring file, within a second of the next calls;
# - a forked child writes a ring of its own, or stops cleanly.
#
# The ring file (layout in src/capture/ring.rs, which pytap decodes): a
# 4096-byte header, then `size` bytes of records; `tail` counts bytes
# written (published after each record, so a process that dies loses
# nothing already written), `head` bytes pytap has read.

import os as _os
import sys as _sys


# Attached to a running 3.14 (PEP 768), pytap runs this file with its
# settings in `_PYTAP_ATTACH` (a dict) before it: nothing to restore, no
# sitecustomize to chain.
_ATTACH = globals().get("_PYTAP_ATTACH")


def _own_codes(code):
    """The agent's own code objects (this module's, and every function's
    in it, nested ones included), whose events are never shown, each its
    own key and value: one is the agent's when `_OWN_CODES.get(c) is c`.
    By identity, not file name: attached through PEP 768, 3.14 runs this
    file's text as `<string>`, the name `python -c` code has too (and not
    by `id()`, which 3.8 audits)."""
    own = {}
    todo = [code]
    while todo:
        c = todo.pop()
        own[c] = c
        todo.extend(k for k in c.co_consts if type(k) is type(code))
    return own


_OWN_CODES = _own_codes(_sys._getframe().f_code)


def _install():
    settings = _ATTACH or _os.environ
    directory = settings.get("PYTAP_CAPTURE_DIR")
    if not directory:
        return
    size = settings.get("PYTAP_CAPTURE_BYTES") or "0"
    if _ATTACH:
        events = _ATTACH.get("PYTAP_CAPTURE_EVENTS") or ""
    else:
        _restore_view()
        # pytap marks each launched process whose events it wants from the
        # agent (`PID.serve`, written while the process was held at its
        # exec: engine/capture_mode.rs), with those events; the others have
        # markers pytap uses, or are not traced. Attached to, pytap only
        # asks the served.
        mark = _os.path.join(directory, "%d.serve" % _os.getpid())
        try:
            fd = _os.open(mark, _os.O_RDONLY)
            try:
                events = _os.read(fd, 4096).decode("ascii", "replace")
            finally:
                _os.close(fd)
            _os.unlink(mark)
        except OSError:
            return
    events = set(e for e in events.strip().split(",") if e in _EVENTS)
    if not events:
        return
    try:
        agent = _Agent(directory, int(size), events)
    except Exception as e:  # never into user code
        _report_failure(directory, e)
        return
    try:
        if hasattr(_sys, "monitoring"):
            agent.start()
        else:
            agent.start_profile()
    except Exception as e:
        agent._finish(_FAILED, "%s: %s" % (type(e).__name__, e))


def _chain():
    """Runs the sitecustomize the program would have run: the next one on
    sys.path (this file's directory is gone from it). Its errors reach
    site.py as they would untraced. With none, this module stays
    `sitecustomize` (importlib needs one under that name)."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    _sys.path[:] = [p for p in _sys.path if p != here]
    me = _sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401 (the program's own)
    except ImportError as e:
        if e.name != "sitecustomize":
            raise
        if me is not None:
            _sys.modules["sitecustomize"] = me


def _restore_view():
    """The program sees os.environ as it would untraced (sys.path: see
    `_chain`). The process environment keeps pytap's variables, so
    children inherit them (and are captured too)."""
    data = getattr(_os.environ, "_data", None)
    if data is None:
        return
    enc = _os.environ.encodekey
    # Set only when the program had a PYTHONPATH of its own.
    original = _os.environ.get("PYTAP_CAPTURE_PYTHONPATH")
    for key in ("PYTAP_CAPTURE_DIR", "PYTAP_CAPTURE_BYTES", "PYTAP_CAPTURE_PYTHONPATH"):
        data.pop(enc(key), None)
    if original is None:
        data.pop(enc("PYTHONPATH"), None)
    else:
        data[enc("PYTHONPATH")] = _os.environ.encodevalue(original)


def _report_failure(directory, error):
    try:
        with open(_os.path.join(directory, "%d.error" % _os.getpid()), "w") as f:
            f.write("%s: %s\n" % (type(error).__name__, error))
    except Exception:
        pass


def _load_extension(directory):
    """pytap's compiled callbacks (`_pytap_agent.abi3.so` next to this
    file: `sys.monitoring` callbacks on 3.12+, a profile function on
    3.8-3.11), or None: then the Python callbacks below do the work. A
    free-threaded build cannot load a stable-ABI module; the Python
    callbacks need the GIL too, so the agent stops there (see start)."""
    if _os.environ.get("PYTAP_CAPTURE_PURE") == "1":
        return None
    path = _os.path.join(directory, "_pytap_agent.abi3.so")
    try:
        # The import system's own classes: importing `importlib` would
        # change what the program's own `import importlib` does.
        external = _sys.modules["_frozen_importlib_external"]
        loader = external.ExtensionFileLoader("_pytap_agent", path)
        spec = _sys.modules["_frozen_importlib"].ModuleSpec("_pytap_agent", loader, origin=path)
        module = loader.create_module(spec)
        loader.exec_module(module)
        return module
    except Exception:
        return None


def _cleanup(directory, ring):
    """pytap is gone: its directory goes with the last agent to notice."""
    try:
        _os.unlink(ring)
    except OSError:
        pass
    try:
        left = _os.listdir(directory)
        if any(name.endswith(".ring") for name in left):
            return
        cache = _os.path.join(directory, "__pycache__")
        for name in _os.listdir(cache) if _os.path.isdir(cache) else ():
            _os.unlink(_os.path.join(cache, name))
        if _os.path.isdir(cache):
            _os.rmdir(cache)
        for name in left:
            if name != "__pycache__":
                _os.unlink(_os.path.join(directory, name))
        _os.rmdir(directory)
    except OSError:
        pass


# Record kinds (ring.rs).
_PAD, _DEF, _ENTRY, _RETURN, _LINE = 0, 1, 2, 3, 4
_GC_START, _GC_DONE, _IMPORT_START, _IMPORT_DONE, _AUDIT = 5, 6, 7, 8, 9
# The events pytap may ask for (`PID.serve`).
_EVENTS = ("entry", "return", "line", "gc_start", "gc_done", "import_start", "import_done",
           "audit")
_FUNCTION_EVENTS = ("entry", "return", "line")
# An audit argument's value tags, and what the markers' probe captures of
# each (crates/abi: event::records).
_V_NONE, _V_BOOL, _V_INT, _V_FLOAT, _V_STR, _V_BYTES, _V_TUPLE, _V_OTHER, _V_UNREADABLE = 0, 1, 2, 3, 4, 5, 6, 7, 8
_OBJ_BYTES, _NESTED_OBJ_BYTES, _AUDIT_ITEMS, _AUDIT_NESTED, _TYPE_NAME = 256, 128, 8, 4, 32
# Header fields (byte offsets).
_TAIL, _HEAD, _LOST, _BEAT, _PID, _STATE, _CALLBACKS = 24, 32, 40, 48, 56, 60, 64
# Which callbacks record (at _CALLBACKS): compiled, Python (the extension
# did not load), Python as asked (PYTAP_CAPTURE_PURE=1), a Python profile
# function (3.8-3.11, no sys.monitoring), the compiled profile function.
_COMPILED, _PYTHON, _PYTHON_ASKED, _PROFILE, _COMPILED_PROFILE = 1, 2, 3, 4, 5
_HEADER = 4096
# States.
_ACTIVE, _DETACHED, _NO_TOOL, _FAILED, _FORKED = 1, 2, 3, 4, 5
# Heartbeat checks: every so many events, and at most this often.
_CHECK_EVERY = 256
_STALE_NS = 1_000_000_000


def _def_record(pack, cid, code):
    """A code object's def record (ring.rs), padded to 32 bytes, as every
    record before the gc, import and audit ones is: none crosses the end."""
    filename = code.co_filename.encode("utf-8", "surrogateescape")[:4096]
    name = code.co_name.encode("utf-8", "surrogateescape")[:4096]
    length = (24 + len(filename) + len(name) + 31) & ~31
    record = pack("<IHHIiHHI", length, _DEF, len(filename), cid,
                  code.co_firstlineno, len(name), 0, 0) + filename + name
    return record + bytes(length - len(record))


def _mark_record(pack, kind, value, ts, tid, payload):
    """A gc, import or audit record (ring.rs), padded to 8 bytes."""
    record = pack("<IHHqQII", (32 + len(payload) + 7) & ~7, kind, 0, value, ts, tid,
                  len(payload)) + payload
    return record + bytes(-len(record) & 7)


class _Imports:
    """Imports as `import__find__load__start/done` give them: the markers
    wrap the interpreter's own call of `importlib._bootstrap._find_and_load`
    (an `import` statement, `__import__`), not the one `_gcd_import`
    (`importlib.import_module`) makes from Python. Each such frame is
    watched from its start to its return (found) or unwind (not found): by
    `sys.monitoring` events local to that code and `_gcd_import`'s (3.12+),
    or by the profile function (3.8-3.11). The module's name is the first
    argument of the frame's first call given a str (its module lock's:
    `_ModuleLockManager(name)`, 3.15's `_HierarchicalLockManager(name)`)
    on 3.12+, its local `name` on 3.8-3.11."""

    # What a watched frame's entry holds before its name is known, and for
    # a frame `_gcd_import` called (not shown).
    UNNAMED, HIDDEN = 0, 1

    def __init__(self, agent):
        self.agent = agent
        self.code = None
        self.gcd_code = None
        self.want_start = "import_start" in agent.events
        self.want_done = "import_done" in agent.events
        self.local = agent.thread._local()
        # One bound method, so that `sys.getprofile()` can be told to be it.
        self.counting = self.counter
        if not (self.want_start or self.want_done):
            return
        boot = _sys.modules.get("_frozen_importlib")
        self.find = getattr(boot, "_find_and_load", None)
        gcd = getattr(boot, "_gcd_import", None)
        self.gcd_code = getattr(gcd, "__code__", None)
        if self.gcd_code is not None:
            self.code = getattr(self.find, "__code__", None)

    def _running(self):
        local = self.local
        try:
            return local.running
        except AttributeError:
            local.running = []
            local.hide_next = False
            return local.running

    def hide_next(self):
        """The next watched frame on this thread is `_gcd_import`'s call."""
        self._running()
        self.local.hide_next = True

    def started(self, name):
        """A watched frame starts; `name`: its module, when known now."""
        running = self._running()
        local = self.local
        if local.hide_next:
            local.hide_next = False
            running.append(self.HIDDEN)
            return
        running.append(self.UNNAMED)
        if name is not None:
            self.named(name)

    def named(self, name):
        running = self._running()
        if not running or running[-1] is not self.UNNAMED or type(name) is not str:
            return
        running[-1] = name
        if self.want_start:
            self.agent.mark(_IMPORT_START, 0, name.encode("utf-8", "replace"))

    def ended(self, found):
        running = self._running()
        name = running.pop() if running else self.HIDDEN
        if type(name) is str and self.want_done:
            self.agent.mark(_IMPORT_DONE, 1 if found else 0, name.encode("utf-8", "replace"))

    def audited(self, args):
        """3.8-3.11 without function events: the audit event `import`
        announces the interpreter's call of `_find_and_load` for `args[0]`
        (its loaders raise it too, without sys.path, meta_path and
        path_hooks: not for this). Until that call returns, a profile
        function on this thread counts frames, reading none of them (a
        frame's `f_code` is an audited read), and sees it return."""
        if len(args) < 5 or (args[2] is None and args[3] is None and args[4] is None):
            return
        name = args[0]
        if type(name) is not str:
            return
        local = self.local
        try:
            open_ = local.open
        except AttributeError:
            open_ = local.open = []
            local.depth = 0
        current = _sys.getprofile()
        if not open_:
            if current is not None:
                # The program's own profile function: not replaced.
                return
            # Audit hooks run unprofiled, and frames already running when
            # it is set give it no return: it counts from here.
            local.depth = 0
            _sys.setprofile(self.counting)
        elif current is not self.counting:
            return
        open_.append((local.depth, name))
        if self.want_start:
            self.agent.mark(_IMPORT_START, 0, name.encode("utf-8", "replace"))

    def counter(self, frame, event, arg):
        """The profile function of an import in progress (see `audited`):
        its return is the first back at the depth it started at; the last
        one's removes it."""
        try:
            local = self.local
            if event == "call":
                local.depth += 1
            elif event == "return":
                local.depth -= 1
                open_ = local.open
                if open_ and open_[-1][0] == local.depth:
                    name = open_.pop()[1]
                    if not open_:
                        # Its audit event is the agent's.
                        busy = self.agent.busy
                        me = self.agent.thread.get_native_id()
                        busy.add(me)
                        try:
                            _sys.setprofile(None)
                        finally:
                            busy.discard(me)
                    if self.want_done:
                        self.agent.mark(_IMPORT_DONE, 0 if arg is None else 1,
                                        name.encode("utf-8", "replace"))
        except Exception as e:
            self.agent._mark_failed(e)

    def compiled(self, frame, is_call, value, hidden):
        """The compiled profile function's call (`hidden`: from
        `_gcd_import`) or return of `_find_and_load`."""
        try:
            if is_call:
                if hidden:
                    self.hide_next()
                self.started(frame.f_locals.get("name"))
            else:
                self.ended(value is not None)
        except Exception as e:
            self.agent._mark_failed(e)

    def profiled(self, frame, event, arg):
        """The profile function's call or return of `_find_and_load`
        (which returns a module when found, never None)."""
        if event == "call":
            if frame.f_back is not None and frame.f_back.f_code is self.gcd_code:
                self.hide_next()
            self.started(frame.f_locals.get("name"))
        else:
            self.ended(arg is not None)

    def watch(self, tool):
        """3.12+: `sys.monitoring` on tool `tool`: PY_START, PY_RETURN and
        CALL local to `_find_and_load`, CALL local to `_gcd_import`, and
        PY_UNWIND (not a local event) looked at for that code only. Calls
        that say nothing are disabled where they are."""
        mon = _sys.monitoring
        ev = mon.events
        code = self.code
        gcd_code = self.gcd_code
        find = self.find
        disable = mon.DISABLE
        agent = self

        def on_start(c, offset):
            try:
                if c is code:
                    agent.started(None)
            except Exception as e:
                agent.agent._mark_failed(e)

        def on_call(c, offset, callable, arg0):
            try:
                if c is code:
                    # Its first call with a str (the module lock's, which
                    # 3.15 takes hierarchically for a submodule) names it.
                    if type(arg0) is str:
                        agent.named(arg0)
                        return None
                elif c is gcd_code and callable is find:
                    agent.hide_next()
                    return None
            except Exception as e:
                agent.agent._mark_failed(e)
                return None
            return disable

        def on_return(c, offset, value):
            try:
                if c is code:
                    agent.ended(True)
            except Exception as e:
                agent.agent._mark_failed(e)

        def on_unwind(c, offset, exc):
            try:
                if c is code:
                    agent.ended(False)
            except Exception as e:
                agent.agent._mark_failed(e)

        self.registered = [(ev.PY_START, on_start), (ev.CALL, on_call),
                           (ev.PY_RETURN, on_return), (ev.PY_UNWIND, on_unwind)]
        for event, callback in self.registered:
            mon.register_callback(tool, event, callback)
        mon.set_local_events(tool, code, ev.PY_START | ev.PY_RETURN | ev.CALL)
        mon.set_local_events(tool, gcd_code, ev.CALL)
        mon.set_events(tool, ev.PY_UNWIND)


def _encoder():
    """Packs an audit event's name and arguments (ring.rs) as the markers'
    probe would capture them: the first `_AUDIT_ITEMS` arguments, the
    first `_AUDIT_NESTED` items of one that is a tuple, and of a str, bytes
    or int what fits in the object bytes the probe reads (`_OBJ_BYTES`,
    `_NESTED_OBJ_BYTES`), at the offsets this interpreter keeps them."""
    import struct

    pack = struct.pack
    getsizeof = _sys.getsizeof
    # Where a str's, a bytes' and an int's data start in the object (a
    # fresh str: one whose UTF-8 form was asked for counts that too).
    ascii_at = getsizeof("") - 1
    compact_at = getsizeof("".join(["\xe9", "x"])) - 3
    bytes_at = getsizeof(b"") - 1
    digits_at = getsizeof(1) - 4
    # A class statement's type (tp_name: its name) is a heap type and not
    # immutable; a C type's tp_name is `module.name`.
    heap_type, immutable = 1 << 9, 1 << 8
    # Looked up now: a codec's first lookup imports it (audited).
    "".encode("utf-32-le", "surrogatepass")

    def type_name(t):
        if t.__flags__ & (heap_type | immutable) == heap_type:
            name = t.__name__
        else:
            module = t.__module__
            name = t.__name__ if module == "builtins" else "%s.%s" % (module, t.__name__)
        return name.encode("utf-8", "replace")[:_TYPE_NAME - 1]

    def value(v, cap, nested):
        t = type(v)
        if v is None:
            return bytes((_V_NONE,))
        if t is bool:
            return bytes((_V_BOOL, 1 if v else 0))
        if t is int:
            if digits_at + 4 * ((abs(v).bit_length() + 29) // 30) > cap:
                return bytes((_V_UNREADABLE,))
            text = str(v).encode("ascii")
            return pack("<BH", _V_INT, len(text)) + text
        if t is float:
            return pack("<Bd", _V_FLOAT, v)
        if t is str:
            n = len(v)
            if v.isascii():
                kind, at = 1, ascii_at
            else:
                widest = ord(max(v))
                kind = 1 if widest < 256 else 2 if widest < 65536 else 4
                at = compact_at
            take = min(n, max(0, (cap - at) // kind))
            data = v[:take].encode("utf-32-le", "surrogatepass")
            return pack("<BBI", _V_STR, take < n, take) + data
        if t is bytes:
            n = len(v)
            take = min(n, max(0, cap - bytes_at))
            return pack("<BBI", _V_BYTES, take < n, take) + v[:take]
        if t is tuple:
            n = len(v)
            if nested:
                return pack("<BIB", _V_TUPLE, n, 0)
            sent = min(n, _AUDIT_NESTED)
            return pack("<BIB", _V_TUPLE, n, sent) + b"".join(
                value(v[i], _NESTED_OBJ_BYTES, True) for i in range(sent))
        name = type_name(t)
        return pack("<BB", _V_OTHER, len(name)) + name

    def encode(event, args):
        name = event.encode("utf-8", "replace")[:4096]
        if type(args) is not tuple:
            args = tuple(args)
        sent = min(len(args), _AUDIT_ITEMS)
        return pack("<H", len(name)) + name + pack("<IB", len(args), sent) + b"".join(
            value(args[i], _OBJ_BYTES, False) for i in range(sent))

    return encode


class _Agent:
    def __init__(self, directory, size, events):
        import _thread
        import mmap
        import struct
        import time

        self.directory = directory
        self.size = size if size >= 65536 and size & (size - 1) == 0 else 16 << 20
        self.events = events
        self.struct = struct
        self.mmap = mmap
        self.time = time
        self.thread = _thread
        self.tool = None
        self.mm = None
        self.path = None
        self.registered = ()
        self.wanted = 0
        self.functions = any(e in events for e in _FUNCTION_EVENTS)
        self.entered = None
        # The gc, import and audit records' writer: mark(kind, value,
        # payload), set with the callbacks (it writes the same ring).
        self.mark = None
        # The gc, import and audit callbacks run while this holds True
        # (an audit hook stays installed for good: it then returns at once).
        self.on = [True]
        # The native ids of the threads inside the agent's own work (the
        # audit hook's included), whose audit events are the agent's, not
        # the program's.
        self.busy = set()
        self.gc_callback = None
        self.import_tool = None
        self.imports = None
        self.profile = None
        self.profile_lock = None
        self.compiled_profile = False
        self.ext = _load_extension(directory)
        if self.ext is not None:
            self.callbacks = _COMPILED if hasattr(_sys, "monitoring") else _COMPILED_PROFILE
        elif not hasattr(_sys, "monitoring"):
            self.callbacks = _PROFILE
        elif _os.environ.get("PYTAP_CAPTURE_PURE") == "1":
            self.callbacks = _PYTHON_ASKED
        else:
            self.callbacks = _PYTHON
        self._open()

    def _open(self):
        pid = _os.getpid()
        self.pid = pid
        # A process that executed a program again (os.execv) finds the ring
        # of its former program, which pytap may not have read to its end:
        # the new one comes after it, by name too (pytap reads a process's
        # rings in that order).
        for n in range(10000):
            name = "%d.ring" % pid if n == 0 else "%d.x%04d.ring" % (pid, n)
            self.path = _os.path.join(self.directory, name)
            try:
                fd = _os.open(self.path, _os.O_RDWR | _os.O_CREAT | _os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError("no free ring name for pid %d" % pid)
        try:
            _os.ftruncate(fd, _HEADER + self.size)
            self.mm = self.mmap.mmap(fd, _HEADER + self.size)
        finally:
            _os.close(fd)
        # The magic last: pytap reads a ring once it is there.
        self.struct.pack_into("<IIQ", self.mm, 8, 1, _HEADER, self.size)
        self.struct.pack_into("<III", self.mm, _PID, pid, _ACTIVE, self.callbacks)
        self.mm[0:8] = b"PYTAPRNG"

    def start(self):
        mon = _sys.monitoring
        if hasattr(_sys, "_is_gil_enabled") and not _sys._is_gil_enabled():
            self._finish(_FAILED, "a free-threaded build (no GIL): the agent needs the GIL")
            return
        # One tool for function events, another for the imports' local
        # events (a tool has one callback per event, for every code).
        wanted = [self.functions, "import_start" in self.events or "import_done" in self.events]
        tools = [t for t in (mon.PROFILER_ID, 3, 4, 1, 0) if mon.get_tool(t) is None]
        if len(tools) < sum(wanted):
            used = ", ".join("%d %s" % (i, mon.get_tool(i)) for i in range(6)
                             if mon.get_tool(i) is not None)
            self._finish(_NO_TOOL, "no free sys.monitoring tool id (in use: %s)" % used)
            return
        if wanted[0]:
            self.tool = tools.pop(0)
            mon.use_tool_id(self.tool, "pytap")
        if wanted[1]:
            self.import_tool = tools.pop(0)
            mon.use_tool_id(self.import_tool, "pytap imports")
        self._install_callbacks()
        self._seed()
        if self.tool is not None:
            self.wanted = 0
            for event, _ in self.registered:
                self.wanted |= event
            mon.set_events(self.tool, self.wanted)
        self._start_marks()
        try:
            _os.register_at_fork(before=self._pause, after_in_parent=self._resume,
                                 after_in_child=self._forked)
        except Exception:
            pass

    def start_profile(self):
        """CPython 3.8-3.11 (asked for with `--capture in-process`): a
        profile function (sys.setprofile, and threading.setprofile for the
        threads started later) records calls and returns, under a lock (the
        GIL may pass at any instruction there)."""
        import threading

        self.threading = threading
        if self.ext is not None and self.functions:
            if self._start_compiled_profile():
                self._start_marks()
                try:
                    _os.register_at_fork(after_in_child=self._forked)
                except Exception:
                    pass
                return
            # The Python profile function, said in the header.
            self.callbacks = _PROFILE
            self.struct.pack_into("<I", self.mm, _CALLBACKS, _PROFILE)
        self._profile_callbacks()
        # Without function events, imports are watched from the audit
        # hook (`_Imports.audited`).
        if self.functions:
            self._seed()
            _sys.setprofile(self.profile)
            threading.setprofile(self.profile)
        else:
            self.profile = None
        self._start_marks()
        try:
            _os.register_at_fork(after_in_child=self._forked)
        except Exception:
            pass

    def _profile_callbacks(self):
        mm = self.mm
        words = memoryview(mm).cast("Q")
        self.words = words
        pack = self.struct.pack
        clock = self.time.monotonic_ns
        get_ident = self.thread.get_ident
        native = self.thread.get_native_id
        # Reentrant: a collection an allocation runs while it is held (the
        # gc callback) writes its record inside; the audit hook knows the
        # profile function's own `frame.f_code` (an audited read) by it.
        lock = self.thread.RLock()
        self.profile_lock = lock
        wanted = set(e for e, name in (("call", "entry"), ("return", "return"))
                     if name in self.events)
        imports = self._import_watch()
        base = _HEADER >> 3
        capacity = self.size >> 3
        mask = capacity - 1
        tables = {}
        local = self.thread._local()
        agent = self
        own_codes = _OWN_CODES
        state = {"tail": 0, "countdown": _CHECK_EVERY, "lost": 0, "beat": 0,
                 "seen": clock(), "cid": 0, "stopped": False}

        def alive():
            now = clock()
            value = words[_BEAT >> 3]
            if value == 0xFFFFFFFFFFFFFFFF:
                return False
            if value != state["beat"]:
                state["beat"] = value
                state["seen"] = now
                return True
            return now - state["seen"] < _STALE_NS

        def write(record_words):
            """Appends whole records (a list of words), padding at the end."""
            n = len(record_words)
            tail = state["tail"]
            pos = tail & mask
            pad = capacity - pos if pos + n > capacity else 0
            head = words[_HEAD >> 3] >> 3
            if tail + pad + n - head > capacity:
                state["lost"] += 1
                words[_LOST >> 3] = state["lost"]
                return False
            if pad:
                words[base + pos] = (pad << 3) | _PAD << 32
                tail += pad
                pos = 0
            # No allocation a collection could run at, from here to the
            # publication (the gc callback writes too).
            i = 0
            while i < n:
                words[base + pos + i] = record_words[i]
                i += 1
            tail += n
            state["tail"] = tail
            words[3] = tail << 3
            return True

        def write_bytes(record):
            """Appends a record made of bytes (a multiple of 8)."""
            return write([int.from_bytes(record[i:i + 8], "little")
                          for i in range(0, len(record), 8)])

        def define(code):
            if own_codes.get(code) is code:
                tables[code] = 0
                return 0
            state["cid"] += 1
            cid = state["cid"]
            if not write_bytes(_def_record(pack, cid, code)):
                return None
            tables[code] = cid
            return cid

        def enter_outer(frame, tid):
            """Entries for `frame` and its callers, outermost first (the
            lock held)."""
            codes = []
            while frame is not None:
                codes.append(frame.f_code)
                frame = frame.f_back
            for code in reversed(codes):
                cid = tables.get(code)
                if cid is None:
                    cid = define(code)
                if cid:
                    write([32 | _ENTRY << 32, cid | (code.co_firstlineno & 0xFFFFFFFF) << 32,
                           clock(), tid])

        def profile(frame, event, arg):
            if event == "call":
                kind = 32 | _ENTRY << 32
            elif event == "return":
                kind = 32 | _RETURN << 32
            else:
                return
            try:
                if state["stopped"]:
                    _sys.setprofile(None)
                    return
                with lock:
                    code = frame.f_code
                    if code is imports.code:
                        imports.profiled(frame, event, arg)
                    if event not in wanted:
                        return
                    cid = tables.get(code)
                    if cid is None:
                        cid = define(code)
                    if not cid:
                        return
                    state["countdown"] -= 1
                    if state["countdown"] <= 0:
                        state["countdown"] = _CHECK_EVERY
                        if not alive():
                            state["stopped"] = True
                            agent._finish(_DETACHED, None)
                            return
                    try:
                        tid = local.tid
                    except AttributeError:
                        tid = local.tid = native()
                        # A thread's profile function is set inside its
                        # bootstrap (threading.setprofile): the frames
                        # already running get their entries first, so their
                        # returns have them.
                        enter_outer(frame.f_back if event == "call" else frame, tid)
                    write([kind, cid | (frame.f_lineno & 0xFFFFFFFF) << 32, clock(), tid])
            except RecursionError:
                state["lost"] += 1
            except Exception as e:
                state["stopped"] = True
                agent._finish(_FAILED, "%s: %s" % (type(e).__name__, e))

        def seed(code, offset):
            with lock:
                cid = tables.get(code)
                if cid is None:
                    cid = define(code)
                if cid:
                    try:
                        tid = local.tid
                    except AttributeError:
                        tid = local.tid = native()
                    write([32 | _ENTRY << 32, cid | (code.co_firstlineno & 0xFFFFFFFF) << 32,
                           clock(), tid])

        def mark(kind, value, payload):
            with lock:
                if state["stopped"]:
                    return
                if not alive():
                    state["stopped"] = True
                    agent._finish(_DETACHED, None)
                    return
                try:
                    tid = local.tid
                except AttributeError:
                    tid = local.tid = native()
                write_bytes(_mark_record(pack, kind, value, clock(), tid, payload))

        self.profile = profile
        self.profile_state = state
        self.entered = seed if "entry" in self.events else None
        self.mark = mark

    def _install_callbacks(self):
        """The compiled callbacks when the extension loaded, else the
        Python ones."""
        if self.ext is None:
            self._callbacks()
            return
        ev = _sys.monitoring.events
        self._ext_open()
        self.registered = []
        if "entry" in self.events:
            self.registered += [(ev.PY_START, self.ext.entry), (ev.PY_RESUME, self.ext.entry),
                                (ev.PY_THROW, self.ext.entry)]
        if "return" in self.events:
            self.registered += [(ev.PY_RETURN, self.ext.ret), (ev.PY_YIELD, self.ext.ret),
                                (ev.PY_UNWIND, self.ext.ret)]
        if "line" in self.events:
            self.registered.append((ev.LINE, self.ext.line))
        for event, callback in self.registered:
            _sys.monitoring.register_callback(self.tool, event, callback)
        self.entered = self.ext.entry if "entry" in self.events else None

    def _ext_open(self):
        """The compiled callbacks' recorder on this process's ring, with the
        agent's helpers."""
        own_codes = _OWN_CODES
        agent = self

        def describe(code):
            if own_codes.get(code) is code:
                return None
            return (code.co_filename.encode("utf-8", "surrogateescape")[:4096],
                    code.co_name.encode("utf-8", "surrogateescape")[:4096],
                    code.co_firstlineno)

        def line_of(code, offset):
            # A module's first instruction is on line 0: its first line then.
            for start, end, number in code.co_lines():
                if start <= offset < end:
                    return number or code.co_firstlineno
            return code.co_firstlineno

        def stale():
            agent._finish(_DETACHED, None)

        self.ext.open(self.path, self.size, describe, line_of, stale)
        self.mark = self.ext.mark

    def _start_compiled_profile(self):
        """3.8-3.11 with the extension: its profile function records
        function events (and sees `_find_and_load` for the imports);
        `False` when this interpreter lacks what it needs."""
        ext = self.ext
        self._ext_open()
        imports = self._import_watch()
        self.entered = lambda code, _offset: ext.entry_line(code, code.co_firstlineno)
        self._seed()
        watched = imports.compiled if imports.code is not None else None
        minor = _sys.version_info[1]
        wanted = ("entry" in self.events) | ("return" in self.events) << 1
        if not ext.profile_start(minor, imports.code, watched, imports.gcd_code, wanted):
            self.entered = None
            ext.close()
            self.mark = None
            return False
        self.compiled_profile = True
        self.threading.setprofile(ext.thread)
        return True

    def _callbacks(self):
        """Registers the callbacks, bound to this process's ring. Each keeps
        its fast path inline (a call is the largest cost there is): a
        per-code table gives the record's second word from the
        instruction offset, and the record is four 8-byte stores."""
        mon = _sys.monitoring
        ev = mon.events
        mm = self.mm
        words = memoryview(mm).cast("Q")
        pack = self.struct.pack
        clock = self.time.monotonic_ns
        sleep = self.time.sleep
        get_ident = self.thread.get_ident
        native = self.thread.get_native_id
        base = _HEADER >> 3
        capacity = self.size >> 3
        mask = capacity - 1
        tables = {}
        # The native thread id, per thread (a thread's ident is reused after
        # it ends: not a key for it).
        local = self.thread._local()
        own = {}
        agent = self
        own_codes = _OWN_CODES
        # The first word of each event kind: length 32, the kind.
        w_entry = 32 | _ENTRY << 32
        w_return = 32 | _RETURN << 32
        w_line = 32 | _LINE << 32
        next_cid = 0
        tail = 0  # in words
        head = 0
        countdown = _CHECK_EVERY
        lost = 0
        beat = 0
        beat_seen = clock()

        def alive():
            nonlocal beat, beat_seen
            now = clock()
            value = words[_BEAT >> 3]
            if value == 0xFFFFFFFFFFFFFFFF:
                return False
            if value != beat:
                beat = value
                beat_seen = now
                return True
            return now - beat_seen < _STALE_NS

        def check():
            nonlocal countdown
            countdown = _CHECK_EVERY
            if alive():
                return True
            agent._finish(_DETACHED, None)
            return False

        def drop():
            nonlocal lost
            lost += 1
            words[_LOST >> 3] = lost

        def wait_room(length):
            """Waits up to 0.1 s for pytap to make `length` words free, and
            a pad before them if they would cross the end; `False`: not
            (the event is lost, and counted)."""
            nonlocal head
            head = words[_HEAD >> 3] >> 3
            waited = 0
            while True:
                pos = tail & mask
                pad = capacity - pos if pos + length > capacity else 0
                if tail + pad + length - head <= capacity:
                    return True
                if waited >= 200 or not alive():
                    drop()
                    return False
                sleep(0.0005)
                waited += 1
                head = words[_HEAD >> 3] >> 3

        # Threads: the GIL is only ever given up at a call (or a loop's
        # jump back), so from the last call of a callback to the tail's
        # publication, which has none, no other thread writes the ring:
        # what is reserved is written and published at once.

        def put(record):
            """Appends a record made of bytes (a multiple of 8 no larger
            than the ring); `False`: lost (and counted)."""
            nonlocal tail, lost
            length = len(record)
            n = length >> 3
            if not wait_room(n):
                return False
            # No call from here to the publication.
            pos = tail & mask
            pad = capacity - pos if pos + n > capacity else 0
            if tail + pad + n - head > capacity:
                lost += 1
                words[_LOST >> 3] = lost
                return False
            if pad:
                words[base + pos] = (pad << 3) | _PAD << 32
                tail += pad
                pos = 0
            at = _HEADER + (pos << 3)
            mm[at:at + length] = record
            tail += n
            words[3] = tail << 3
            return True

        def define(code):
            """The code's table (offset to second word), after its def
            record; the agent's own code gets `own` (not shown); `None`
            when the record could not be written (its events are lost)."""
            nonlocal next_cid
            if own_codes.get(code) is code:
                tables[code] = own
                return own
            next_cid += 1
            cid = next_cid
            table = {None: cid}
            if not put(_def_record(pack, cid, code)):
                return None
            tables[code] = table
            return table

        def second_word(code, offset, table):
            """The code id and the offset's line (a module's first
            instruction is on line 0: its first line instead)."""
            line = code.co_firstlineno
            if offset is not None:
                for start, end, number in code.co_lines():
                    if start <= offset < end:
                        if number:
                            line = number
                        break
            word = table[None] | (line & 0xFFFFFFFF) << 32
            table[offset] = word
            return word

        def failed(e):
            if isinstance(e, RecursionError):
                # The user's own recursion is at its limit: this event is
                # lost, the program goes on as it would have.
                drop()
            else:
                agent._finish(_FAILED, "%s: %s" % (type(e).__name__, e))

        def recorder(w_kind):
            """The callback of entries (`w_entry`: PY_START, PY_RESUME,
            PY_THROW) or of returns (`w_return`: PY_RETURN, PY_YIELD,
            PY_UNWIND); a third argument, when there is one, is not used."""

            def on_event(code, offset, _arg=None):
                nonlocal tail, countdown, lost
                try:
                    table = tables.get(code)
                    if table is None:
                        table = define(code)
                    if table is own or table is None:
                        return
                    word = table.get(offset)
                    if word is None:
                        word = second_word(code, offset, table)
                    countdown -= 1
                    if countdown <= 0 and not check():
                        return
                    if tail + 4 - head > capacity and not wait_room(4):
                        return
                    try:
                        tid = local.tid
                    except AttributeError:
                        tid = local.tid = native()
                    now = clock()
                    # No call from here to the publication.
                    if tail + 4 - head > capacity:
                        lost += 1
                        words[_LOST >> 3] = lost
                        return
                    at = base + (tail & mask)
                    words[at] = w_kind
                    words[at + 1] = word
                    words[at + 2] = now
                    words[at + 3] = tid
                    tail += 4
                    words[3] = tail << 3
                except Exception as e:
                    failed(e)

            return on_event

        on_entry = recorder(w_entry)
        on_return = recorder(w_return)

        def write_marker(kind, value, payload):
            """A gc, import or audit record (these are rare: pytap's
            heartbeat is looked at for each)."""
            if not alive():
                agent._finish(_DETACHED, None)
                return
            try:
                tid = local.tid
            except AttributeError:
                tid = local.tid = native()
            record = _mark_record(pack, kind, value, clock(), tid, payload)
            if len(record) >> 3 > capacity:
                drop()
                return
            put(record)

        def on_line(code, line):
            nonlocal tail, countdown, lost
            try:
                table = tables.get(code)
                if table is None:
                    table = define(code)
                if table is own or table is None:
                    return
                countdown -= 1
                if countdown <= 0 and not check():
                    return
                if tail + 4 - head > capacity and not wait_room(4):
                    return
                try:
                    tid = local.tid
                except AttributeError:
                    tid = local.tid = native()
                now = clock()
                word = table[None] | (line & 0xFFFFFFFF) << 32
                # No call from here to the publication.
                if tail + 4 - head > capacity:
                    lost += 1
                    words[_LOST >> 3] = lost
                    return
                at = base + (tail & mask)
                words[at] = w_line
                words[at + 1] = word
                words[at + 2] = now
                words[at + 3] = tid
                tail += 4
                words[3] = tail << 3
            except Exception as e:
                failed(e)

        self.words = words
        self.registered = []
        if "entry" in self.events:
            self.registered += [(ev.PY_START, on_entry), (ev.PY_RESUME, on_entry),
                                (ev.PY_THROW, on_entry)]
        if "return" in self.events:
            self.registered += [(ev.PY_RETURN, on_return), (ev.PY_YIELD, on_return),
                                (ev.PY_UNWIND, on_return)]
        if "line" in self.events:
            self.registered.append((ev.LINE, on_line))
        for event, callback in self.registered:
            mon.register_callback(self.tool, event, callback)
        self.entered = on_entry if "entry" in self.events else None
        self.mark = write_marker

    def _import_watch(self):
        """The imports' watcher (made once: a forked child keeps it)."""
        if self.imports is None:
            self.imports = _Imports(self)
        return self.imports

    def _start_marks(self):
        """gc collections (a gc.callbacks function), imports and audit
        events (an audit hook, added last: every audit event the agent's
        own start raised is behind it)."""
        events = self.events
        agent = self
        on = self.on
        if "gc_start" in events or "gc_done" in events:
            import gc

            want_start = "gc_start" in events
            want_done = "gc_done" in events

            def on_gc(phase, info):
                if not on[0]:
                    return
                try:
                    if phase == "start":
                        if want_start:
                            agent.mark(_GC_START, info["generation"], b"")
                    elif want_done:
                        # As gc__done counts: collected and uncollectable.
                        agent.mark(_GC_DONE, info["collected"] + info["uncollectable"], b"")
                except Exception as e:
                    agent._mark_failed(e)

            gc.callbacks.append(on_gc)
            self.gc = gc
            self.gc_callback = on_gc
        imports = self._import_watch()
        if imports.code is not None and self.import_tool is not None:
            imports.watch(self.import_tool)
        if "audit" in events or (imports.code is not None and self.profile is None
                                 and not hasattr(_sys, "monitoring")):
            self._add_audit_hook()

    def _add_audit_hook(self):
        """The audit hook. A hook cannot be removed: once the agent has
        stopped it returns at its first check."""
        on = self.on
        busy = self.busy
        agent = self
        record = "audit" in self.events
        encode = _encoder()
        native = self.thread.get_native_id
        imports = self.imports
        # Imports without the profile function of function events
        # (3.8-3.11): announced by the audit event `import`.
        audited = None
        if imports.code is not None and self.profile is None and not hasattr(_sys, "monitoring"):
            audited = imports.audited

        def hook(event, args):
            if not on[0]:
                return
            me = native()
            # What the hook itself raises (a codec looked up) is not the
            # program's.
            if me in busy:
                return
            busy.add(me)
            try:
                if not record:
                    if event == "import" and audited is not None:
                        audited(args)
                    return
                if event == "object.__getattr__":
                    # The profile function's own read of `frame.f_code`.
                    lock = agent.profile_lock
                    if lock is not None and lock._is_owned():
                        return
                elif event == "sys.setprofile" and agent.profile is not None:
                    # A new thread's bootstrap setting the agent's profile
                    # function (threading.setprofile), before it has one.
                    if (_sys.getprofile() is None
                            and getattr(agent.threading, "_profile_hook", None) is agent.profile):
                        return
                agent.mark(_AUDIT, 0, encode(event, args))
                # The import marker comes after the audit event, as there.
                if event == "import" and audited is not None:
                    audited(args)
            except Exception as e:
                agent._mark_failed(e)
            finally:
                busy.discard(me)

        _sys.addaudithook(hook)

    def _mark_failed(self, e):
        """A gc, import or audit callback failed: at the user's recursion
        limit the event is lost; otherwise the agent stops, saying why."""
        if isinstance(e, RecursionError):
            return
        self._finish(_FAILED, "%s: %s" % (type(e).__name__, e))

    def _seed(self):
        """The frames running as the agent starts (site's, importlib's;
        after a fork, the caller's) get their entries now, outermost
        first, so their returns have entries and depths are exact."""
        if self.entered is None:
            return
        frames = []
        frame = _sys._getframe(1)
        while frame is not None:
            frames.append(frame.f_code)
            frame = frame.f_back
        for code in reversed(frames):
            self.entered(code, 0)

    def _finish(self, state, message):
        """Unregisters the tool, writes why, frees the ring; with pytap gone
        (or never there), removes the ring file too."""
        busy = self.busy
        me = self.thread.get_native_id()
        inside = me in busy
        busy.add(me)
        try:
            self._stop(state, message)
        finally:
            if not inside:
                busy.discard(me)

    def _stop(self, state, message):
        # No more marks; the agent's own audit events from here on are not
        # the program's.
        self.on[0] = False
        mon = getattr(_sys, "monitoring", None)
        if self.tool is not None:
            try:
                mon.set_events(self.tool, 0)
                for event, _ in self.registered:
                    mon.register_callback(self.tool, event, None)
                mon.free_tool_id(self.tool)
            except Exception:
                pass
            self.tool = None
        if self.import_tool is not None:
            try:
                mon.set_events(self.import_tool, 0)
                mon.set_local_events(self.import_tool, self.imports.code, 0)
                mon.set_local_events(self.import_tool, self.imports.gcd_code, 0)
                for event, _ in self.imports.registered:
                    mon.register_callback(self.import_tool, event, None)
                mon.free_tool_id(self.import_tool)
            except Exception:
                pass
            self.import_tool = None
        if self.gc_callback is not None:
            try:
                self.gc.callbacks.remove(self.gc_callback)
            except Exception:
                pass
            self.gc_callback = None
        if message:
            _report_failure(self.directory, RuntimeError(message))
        if self.ext is not None:
            try:
                self.ext.close()
            except Exception:
                pass
        if self.compiled_profile:
            # This thread now; the others at their next event.
            self.compiled_profile = False
            try:
                self.ext.profile_stop()
                self.threading.setprofile(None)
            except Exception:
                pass
        if getattr(self, "profile", None) is not None:
            # This thread now; the others when their profile function runs.
            self.profile_state["stopped"] = True
            _sys.setprofile(None)
            self.threading.setprofile(None)
            self.profile = None
        mm, self.mm = self.mm, None
        if mm is not None:
            try:
                self.struct.pack_into("<I", mm, _STATE, state)
                self._release()
                mm.close()
            except Exception:
                pass
        if state == _DETACHED:
            _cleanup(self.directory, self.path)

    def _release(self):
        """Lets go of the view of the ring (the mapping cannot close while
        a view exists); a callback still holding it fails and stops."""
        words, self.words = getattr(self, "words", None), None
        if words is not None:
            words.release()

    # os.fork: no events while the agent itself runs around it.
    def _pause(self):
        if self.tool is not None:
            _sys.monitoring.set_events(self.tool, 0)

    def _resume(self):
        if self.tool is not None:
            _sys.monitoring.set_events(self.tool, self.wanted)

    def _forked(self):
        """In a forked child: the parent's ring is the parent's. The child
        writes a ring of its own, or stops."""
        if self.mm is None:
            return
        busy = self.busy
        me = self.thread.get_native_id()
        busy.add(me)
        try:
            mm, self.mm = self.mm, None
            self._release()
            mm.close()
            self._open()
            if self.compiled_profile:
                # The profile function goes on in this thread, the only one.
                self._ext_open()
            elif self.profile_lock is not None:
                profiling = self.profile is not None
                self._profile_callbacks()
                if profiling:
                    _sys.setprofile(self.profile)
                else:
                    self.profile = None
            else:
                self._install_callbacks()
                self._seed()
                if self.tool is not None:
                    _sys.monitoring.set_events(self.tool, self.wanted)
        except Exception as e:
            if self.profile_lock is not None:
                _sys.setprofile(None)
            self._finish(_FORKED, "%s: %s" % (type(e).__name__, e))
        finally:
            busy.discard(me)

_install()
if not _ATTACH:
    _chain()
