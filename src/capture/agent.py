# pytap's in-process agent: function events from a sys.monitoring tool
# (CPython 3.12 and later) or a profile function (3.8-3.11), written to a
# ring file that pytap reads as they happen. Kept in the pytap binary; pytap puts it on the traced program's
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
    """The ids of the agent's own code objects (this module's, and every
    function's in it, nested ones included), whose events are never shown.
    By identity, not file name: attached through PEP 768, 3.14 runs this
    file's text as `<string>`, the name `python -c` code has too."""
    ids = set()
    todo = [code]
    while todo:
        c = todo.pop()
        ids.add(id(c))
        todo.extend(k for k in c.co_consts if type(k) is type(code))
    return ids


_OWN_CODES = _own_codes(_sys._getframe().f_code)


def _install():
    settings = _ATTACH or _os.environ
    directory = settings.get("PYTAP_CAPTURE_DIR")
    if not directory:
        return
    size = settings.get("PYTAP_CAPTURE_BYTES") or "0"
    events = (settings.get("PYTAP_CAPTURE_EVENTS") or "entry,return").split(",")
    if not _ATTACH:
        _restore_view()
        # pytap marks each launched process whose function events it wants
        # from the agent (`PID.serve`, written while the process was held at
        # its exec: engine/capture_mode.rs); the others have markers pytap
        # uses, or are not traced. Attached to, pytap only asks the served.
        mark = _os.path.join(directory, "%d.serve" % _os.getpid())
        try:
            _os.unlink(mark)
        except OSError:
            return
    if not [e for e in events if e in ("entry", "return", "line")]:
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
    for key in ("PYTAP_CAPTURE_DIR", "PYTAP_CAPTURE_BYTES", "PYTAP_CAPTURE_EVENTS",
                "PYTAP_CAPTURE_PYTHONPATH"):
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
    file), or None: then the Python callbacks below do the work. A
    free-threaded build cannot load a stable-ABI module; the Python
    callbacks need the GIL too, so the agent stops there (see start)."""
    if _os.environ.get("PYTAP_CAPTURE_PURE") == "1" or not hasattr(_sys, "monitoring"):
        return None
    path = _os.path.join(directory, "_pytap_agent.abi3.so")
    try:
        import importlib.machinery as machinery

        loader = machinery.ExtensionFileLoader("_pytap_agent", path)
        spec = machinery.ModuleSpec("_pytap_agent", loader, origin=path)
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
# Header fields (byte offsets).
_TAIL, _HEAD, _LOST, _BEAT, _PID, _STATE, _CALLBACKS = 24, 32, 40, 48, 56, 60, 64
# Which callbacks record (at _CALLBACKS): compiled, Python (the extension
# did not load), Python as asked (PYTAP_CAPTURE_PURE=1), a Python profile
# function (3.8-3.11, no sys.monitoring).
_COMPILED, _PYTHON, _PYTHON_ASKED, _PROFILE = 1, 2, 3, 4
_HEADER = 4096
# States.
_ACTIVE, _DETACHED, _NO_TOOL, _FAILED, _FORKED = 1, 2, 3, 4, 5
# Heartbeat checks: every so many events, and at most this often.
_CHECK_EVERY = 256
_STALE_NS = 1_000_000_000


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
        self.ext = _load_extension(directory)
        if self.ext is not None:
            self.callbacks = _COMPILED
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
        self.path = _os.path.join(self.directory, "%d.ring" % pid)
        fd = _os.open(self.path, _os.O_RDWR | _os.O_CREAT | _os.O_EXCL, 0o600)
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
        for tool in (mon.PROFILER_ID, 3, 4):
            if mon.get_tool(tool) is None:
                mon.use_tool_id(tool, "pytap")
                self.tool = tool
                break
        else:
            used = ", ".join("%d %s" % (i, mon.get_tool(i)) for i in range(6)
                             if mon.get_tool(i) is not None)
            self._finish(_NO_TOOL, "no free sys.monitoring tool id (in use: %s)" % used)
            return
        self._install_callbacks()
        self._seed()
        self.wanted = 0
        for event, _ in self.registered:
            self.wanted |= event
        mon.set_events(self.tool, self.wanted)
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
        self._profile_callbacks()
        self._seed()
        _sys.setprofile(self.profile)
        threading.setprofile(self.profile)
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
        lock = self.thread.allocate_lock()
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
            for i, w in enumerate(record_words):
                words[base + pos + i] = w
            tail += n
            state["tail"] = tail
            words[3] = tail << 3
            return True

        def define(code):
            if id(code) in own_codes:
                tables[code] = 0
                return 0
            state["cid"] += 1
            cid = state["cid"]
            filename = code.co_filename.encode("utf-8", "surrogateescape")[:4096]
            name = code.co_name.encode("utf-8", "surrogateescape")[:4096]
            length = (24 + len(filename) + len(name) + 31) & ~31
            record = pack("<IHHIiHHI", length, _DEF, len(filename), cid,
                          code.co_firstlineno, len(name), 0, 0) + filename + name
            record += bytes(length - len(record))
            if not write([int.from_bytes(record[i:i + 8], "little")
                          for i in range(0, length, 8)]):
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
                code = frame.f_code
                with lock:
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

        self.profile = profile
        self.profile_state = state
        self.entered = seed

    def _install_callbacks(self):
        """The compiled callbacks when the extension loaded, else the
        Python ones."""
        if self.ext is None:
            self._callbacks()
            return
        ev = _sys.monitoring.events
        own_codes = _OWN_CODES
        agent = self

        def describe(code):
            if id(code) in own_codes:
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

        def define(code):
            """The code's table (offset to second word), after its def
            record; the agent's own code gets `own` (not shown); `None`
            when the record could not be written (its events are lost)."""
            nonlocal tail, next_cid, lost
            if id(code) in own_codes:
                tables[code] = own
                return own
            next_cid += 1
            cid = next_cid
            filename = code.co_filename.encode("utf-8", "surrogateescape")[:4096]
            name = code.co_name.encode("utf-8", "surrogateescape")[:4096]
            # Padded to 32 bytes, as every record is: none crosses the end.
            length = (24 + len(filename) + len(name) + 31) & ~31
            record = pack("<IHHIiHHI", length, _DEF, len(filename), cid,
                          code.co_firstlineno, len(name), 0, 0) + filename + name
            record += bytes(length - len(record))
            n = length >> 3
            table = {None: cid}
            if not wait_room(n):
                return None
            # No call from here to the publication.
            pos = tail & mask
            pad = capacity - pos if pos + n > capacity else 0
            if tail + pad + n - head > capacity:
                lost += 1
                words[_LOST >> 3] = lost
                return None
            if pad:
                words[base + pos] = (pad << 3) | _PAD << 32
                tail += pad
                pos = 0
            at = _HEADER + (pos << 3)
            mm[at:at + length] = record
            tail += n
            words[3] = tail << 3
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
        mon = _sys.monitoring
        if self.tool is not None:
            try:
                mon.set_events(self.tool, 0)
                for event, _ in self.registered:
                    mon.register_callback(self.tool, event, None)
                mon.free_tool_id(self.tool)
            except Exception:
                pass
            self.tool = None
        if message:
            _report_failure(self.directory, RuntimeError(message))
        if self.ext is not None:
            try:
                self.ext.close()
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
        if getattr(self, "profile", None) is not None:
            try:
                mm, self.mm = self.mm, None
                self._release()
                mm.close()
                self._open()
                self._profile_callbacks()
                _sys.setprofile(self.profile)
            except Exception as e:
                _sys.setprofile(None)
                self._finish(_FORKED, "%s: %s" % (type(e).__name__, e))
            return
        if self.tool is None:
            return
        try:
            mm, self.mm = self.mm, None
            if mm is not None:
                self._release()
                mm.close()
            self._open()
            self._install_callbacks()
            self._seed()
            _sys.monitoring.set_events(self.tool, self.wanted)
        except Exception as e:
            self._finish(_FORKED, "%s: %s" % (type(e).__name__, e))


_install()
if not _ATTACH:
    _chain()
