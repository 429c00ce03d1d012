"""Where per-file work runs: local threads or processes, or a Dask cluster.

All give the same two calls -- ``submit(fn, *args)`` and ``as_completed(futures)`` -- so
protect and verify keep their manifest, resume and error handling in the calling
process whatever runs the files. With Dask the functions and their arguments (the key
included) are pickled to the workers, which must see IN and OUT at the same paths, and
each task carries a batch of files (:func:`batches`): about a second of work, so that the
scheduler's per-task cost does not dominate.
"""

import os
import signal
import sys
import threading
import time
from concurrent import futures as local_futures
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from .errors import MissingExtraError

EXECUTORS = ("local", "dask")


# Input bytes per task: locally, enough small files that handing tasks and results between threads
# or processes costs little (one file per task cost protect 20% on FSDD in threads, which hold the
# GIL while they hand over); about a second of protect's or verify's work on a Dask worker.
LOCAL_BATCH_BYTES = 256 << 10
DASK_BATCH_BYTES = 2 << 20


@dataclass
class Pool:
    submit: object
    as_completed: object
    batch_bytes: int
    threads: int = 1  # threads a task may use itself (a long file's blocks, a container's cells): jobs // processes


def batches(items, sizes, batch_bytes):
    """``items`` in order, grouped so that each group's ``sizes`` add up to about ``batch_bytes``."""
    group, total = [], 0
    for item, size in zip(items, sizes):
        group.append(item)
        total += size
        if total >= batch_bytes:
            yield group
            group, total = [], 0
    if group:
        yield group


def job_count(jobs):
    """``jobs``, or every core when it is not given."""
    return jobs or os.cpu_count() or 1


@contextmanager
def pool(executor="local", jobs=None, scheduler=None, processes=False, fork=False):
    """A Pool running ``jobs`` tasks at a time locally, or on the Dask scheduler at ``scheduler``
    (a local cluster of ``jobs`` worker processes when no address is given).

    Locally, tasks run in threads, or with ``processes`` in worker processes (for work that
    holds the GIL; started as tasks arrive, and not at all for one job, where a thread does the
    same without a process's start-up). Workers are fresh interpreters, or with ``fork`` copies
    of this process where that is safe (:func:`_start_method`): protect asks for it; verify does
    not, as its workers may load torch and BLAS thread pools, which want a fresh interpreter.
    """
    jobs = job_count(jobs)
    if executor == "local":
        processes = processes and jobs > 1
        if processes:
            import multiprocessing

            start = _start_method() if fork else "spawn"
            workers = local_futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(start),
                                                        initializer=_die_with, initargs=(os.getpid(),))
        else:
            workers = local_futures.ThreadPoolExecutor(max_workers=jobs)
        try:
            submit = _deaf_to_interrupts(workers.submit) if processes else workers.submit
            with _one_blas_thread_each() if processes else nullcontext():
                yield Pool(submit, local_futures.as_completed, LOCAL_BATCH_BYTES, 1 if processes else jobs)
        finally:
            workers.shutdown(wait=True, cancel_futures=True)
        return
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise MissingExtraError("--executor dask needs dask: pip install 'poscuda[dask]'") from None
    import logging

    # a cluster we start is ours to quiet: its workers log harmless errors while it shuts down
    cluster = None if scheduler else LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                  dashboard_address=None, silence_logs=logging.CRITICAL)
    client = Client(scheduler or cluster)
    try:
        yield Pool(lambda fn, *args: client.submit(fn, *args, pure=False), as_completed, DASK_BATCH_BYTES)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def fan_out():
    """On a Dask worker, a ``run(fn, [args, ...])`` that runs ``fn`` on each argument tuple as a task of
    its own on the cluster and returns the results in order (the calling task steps out of its
    worker's slots while it waits, so that they can run); None anywhere else."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        return None

    def run(fn, many):
        with worker_client() as client:
            return client.gather([client.submit(fn, *args, pure=False) for args in many])
    return run


def _start_method():
    """"fork" on Linux from a process running no other Python thread, else "spawn". A forked
    worker is ready at once, where a spawned one first imports numpy and scipy again (0.6 s,
    half of protect's whole run on FSDD); but a fork copies every lock as it stands, and one
    held by another thread would stay held in the child forever."""
    return "fork" if sys.platform.startswith("linux") and threading.active_count() == 1 else "spawn"


def _deaf_to_interrupts(submit):
    """``submit`` starting worker processes (the pool starts them as tasks arrive) with Ctrl-C blocked:
    the calling process alone stops the run, after the batches already running, and the workers
    print no tracebacks of their own. A new process inherits the blocked signal; here it waits
    until the submit is done, then arrives."""
    def wrapped(fn, *args):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return submit(fn, *args)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return wrapped


@contextmanager
def _one_blas_thread_each():
    """While worker processes start: one BLAS/OpenMP thread for each, as the pool runs one process
    per core. A spawned worker loads numpy, which reads these variables, before any initializer
    runs (from the caller's main module, or the first task), so they are set here, in the
    environment it inherits, unless the user set them; they are put back after. (A forked
    worker keeps numpy as this process loaded it.)"""
    variables = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    unset = [name for name in variables if name not in os.environ]
    os.environ.update(dict.fromkeys(unset, "1"))
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


# linux/prctl.h: deliver a signal to this process when the thread that started it exits
_PR_SET_PDEATHSIG = 1


def _die_with(parent):
    """End this worker the moment ``parent`` ends, however it ends (kill -9 included).

    A worker waits on a task queue whose write end it holds itself, so it would never notice;
    left running it would go on writing into OUT and hold OUT's lock, inherited through fork
    (manifest.OutputLock), so that a rerun is refused. On Linux the kernel kills it with the
    parent (PR_SET_PDEATHSIG; the pool starts its workers from the thread that runs the pool,
    which outlives them); elsewhere a thread checks twice a second.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # gone before the request was made
                os._exit(1)
            return
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()


def _exit_without(parent, every=0.5):
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # an output being written is left under its temporary name, removed by the next run
