# memfit's Python runtime view (docs/runtime-view.md in memfit's repository): imported as
# `sitecustomize` by every Python process of `memfit run --python-tracemalloc`, from a zip
# memfit puts first on PYTHONPATH (children and multiprocessing workers inherit the variable;
# a forked process is followed through os.register_at_fork). It starts tracemalloc and reports
# tracemalloc.get_traced_memory() (current, peak) to memfit through a FIFO memfit owns: once at
# start, periodically from a thread of its own, after a fork, and once at exit (atexit, or
# os._exit as forked workers leave). Then it runs the sitecustomize the program would have had
# without memfit, so the program behaves the same. It never writes to stdout or stderr and
# never raises into the program: when memfit is gone it goes quiet.


def _memfit_python_view():
    import os
    import sys

    here = os.path.dirname(__file__)
    # The program's sys.path is what it would be without memfit (children still inherit
    # PYTHONPATH, and so the view).
    try:
        while here in sys.path:
            sys.path.remove(here)
    except Exception:
        pass
    try:
        _start(os, sys)
    except Exception:
        pass
    # The sitecustomize this one shadows (the user's PYTHONPATH, site-packages, the
    # distribution's): found as the import system would have found it, run as that module.
    # Its own errors are the program's, and reach site.py as they would have.
    try:
        from importlib.machinery import PathFinder
        from importlib.util import module_from_spec

        spec = PathFinder.find_spec("sitecustomize", sys.path)
        if spec is None or spec.loader is None:
            return
        module = module_from_spec(spec)
    except Exception:
        return
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _start(os, sys):
    fifo = __MEMFIT_FIFO__
    every = __MEMFIT_INTERVAL_S__
    import atexit
    # Taken now, before the program can patch them (gevent and eventlet replace
    # _thread.start_new_thread and time.sleep with green versions): the reporter is a real
    # thread that sleeps without blocking the program's event loop.
    from _thread import start_new_thread
    from time import sleep

    os_open, os_write, os_close = os.open, os.write, os.close

    try:
        import _tracemalloc as tm
    except ImportError:
        import tracemalloc as tm
    started_here = not tm.is_tracing()
    if started_here:
        tm.start(1)
    try:
        import _signal

        sigpipe = _signal.SIGPIPE
    except Exception:
        _signal = None
        sigpipe = None

    def pid_now():
        # The pid in memfit's PID namespace: /proc is the host's mount when the command is PID 1
        # of its own namespace.
        try:
            return int(os.readlink("/proc/self"))
        except Exception:
            return os.getpid()

    # "own": the pid this state belongs to, as the process sees it: a child forked where
    # os.register_at_fork is missing (Python < 3.7) must not report as its parent.
    state = {"pid": pid_now(), "own": os.getpid(), "quiet": False, "generation": 0}
    flags = os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

    def write(data):
        # Opened for each report: a descriptor kept open could be closed by the program (a
        # daemon closing its descriptors) and its number reused for one of the program's files.
        try:
            fd = os_open(fifo, flags)
        except OSError:
            # No reader (ENXIO) or no FIFO: memfit is gone.
            state["quiet"] = True
            return
        old = None
        try:
            if sigpipe is not None:
                # A program may have SIGPIPE's default action back (it kills): a write to a pipe
                # whose reader just died must not end the program.
                try:
                    old = _signal.pthread_sigmask(_signal.SIG_BLOCK, (sigpipe,))
                except Exception:
                    old = None
            os_write(fd, data)
        except BlockingIOError:
            pass
        except OSError:
            state["quiet"] = True
            if old is not None and sigpipe not in old:
                try:
                    _signal.sigtimedwait((sigpipe,), 0)
                except Exception:
                    pass
        finally:
            if old is not None:
                try:
                    _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
                except Exception:
                    pass
            try:
                os_close(fd)
            except OSError:
                pass

    def report(end):
        if state["quiet"] or os.getpid() != state["own"]:
            return
        try:
            current, peak = tm.get_traced_memory()
            line = '{"kind":"python","pid":%d,"current":%d,"peak":%d,"overhead":%d,"end":%s}\n' % (
                state["pid"],
                current,
                peak,
                tm.get_tracemalloc_memory(),
                "true" if end else "false",
            )
            write(line.encode("ascii"))
        except Exception:
            pass

    def loop(generation):
        try:
            if sigpipe is not None:
                _signal.pthread_sigmask(_signal.SIG_BLOCK, (sigpipe,))
            while state["generation"] == generation and not state["quiet"]:
                sleep(every)
                report(False)
        except BaseException:
            pass

    def start_thread():
        # A bare thread (not threading's): the program's threading.active_count() and
        # threading.enumerate() stay its own.
        start_new_thread(loop, (state["generation"],))

    def after_fork_in_child():
        try:
            state["pid"] = pid_now()
            state["own"] = os.getpid()
            state["generation"] += 1
            if started_here:
                # The child's peak is its own, not the parent's before the fork (Python 3.9+).
                try:
                    tm.reset_peak()
                except Exception:
                    pass
            report(False)
            start_thread()
        except Exception:
            pass

    real_exit = os._exit

    def _exit(status):
        try:
            report(True)
        except BaseException:
            pass
        real_exit(status)

    real_fork = os.fork

    def fork():
        # Python 3.12+ warns at a fork when the process has other threads (python/cpython#100228),
        # and the reporter is one: its warning is silenced, and the program's own (other threads
        # than the reporter) is raised again as Python would, attributed to the caller.
        try:
            with open("/proc/self/stat", "rb") as stat:
                threads = int(stat.read().rsplit(b")", 1)[1].split()[17])
        except Exception:
            threads = 0
        if threads < 2:
            return real_fork()
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"This process \(pid=\d+\) is multi-threaded", category=DeprecationWarning
            )
            pid = real_fork()
        if pid and threads > 2:
            # As CPython: a warning turned into an error (-W error) is dropped, the fork done.
            try:
                warnings.warn(
                    "This process (pid=%d) is multi-threaded, use of fork() may lead to deadlocks in the child."
                    % os.getpid(),
                    DeprecationWarning,
                    stacklevel=2,
                )
            except Exception:
                pass
        return pid

    report(False)
    start_thread()
    # Registered first, so run last: after the program's own exit handlers.
    atexit.register(report, True)
    os.register_at_fork(after_in_child=after_fork_in_child)
    os._exit = _exit
    if sys.version_info >= (3, 12):
        os.fork = fork


_memfit_python_view()
del _memfit_python_view, _start
