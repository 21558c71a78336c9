"""The in-container runner's parts (runner.py is its entry point and main loop).

    config      fixed ids, paths and limits of the sandbox
    frames      the wire format: a 4-byte big-endian length, then a JSON object
    scrub       cleaning up after an execution, as the sandbox uid
    _native     the template's loop, the child's set-up and clean-up as system calls, the
                pages written ahead and the holder of a child's memory, in C
                (../native/_native.c, compiled by ../Dockerfile)
    files       files in (written for the code) and out (read back for the caller)
    child       a one-shot execution inside the child: limits, __main__, CPython's exit
    cells       a session's child: one namespace, one cell per frame
    template    the bare and the preloaded template: the processes every child is forked
                from, which never hold request data
    preload     what the preloaded template imports before it is forked
    warmup      what a preloaded template runs once its modules are imported
    pages       the pages each kind of scientific code writes, probed once; the next child
                writes ahead those of the last request's kind while it waits
    clock       what an execution used of the CPU and of time, and which time limit it reached
    zygote      the next execution's child, forked and sandboxed ahead of time, and the
                runner's handle on it
    supervise   one execution watched from the runner: stdin, output caps, the deadline, the
                kernel's exit status, the cgroup's OOM counters
    session     a session's cells watched from the runner

Standard library only, and _native: these files run inside the sandbox image.
"""
