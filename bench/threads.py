#!/usr/bin/env python3
"""bench/threads.py SECONDS: per-thread CPU of every `webhooky run` process that starts within
SECONDS (run it beside `bench/run drain`). For each such process, until it exits, it reads
/proc/<pid>/task/*/schedstat every 50 ms and prints, per thread (named by the worker:
webhooky-http, webhooky-record, ...; the dispatcher is `webhooky`), its time on a CPU, its
time runnable but waiting for one, and its number of time slices (as last read: a thread that
ends before the process keeps its last figures). Stops by itself."""
import glob
import sys
import time


def workers():
    found = []
    for path in glob.glob('/proc/[0-9]*'):
        try:
            argv = open(path + '/cmdline', 'rb').read().split(b'\0')
        except OSError:
            continue
        if len(argv) > 1 and argv[0].endswith(b'webhooky') and argv[1] == b'run':
            found.append(int(path.rsplit('/', 1)[1]))
    return found


def threads(pid):
    sample = {}
    for task in glob.glob(f'/proc/{pid}/task/*'):
        try:
            name = open(task + '/comm').read().strip()
            on_cpu, waiting, slices = map(int, open(task + '/schedstat').read().split())
        except (OSError, ValueError):
            continue
        sample[task.rsplit('/', 1)[1]] = (name, on_cpu, waiting, slices)
    return sample


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    end = time.time() + float(sys.argv[1])
    done = set()
    while time.time() < end:
        for pid in workers():
            if pid in done:
                continue
            done.add(pid)
            first = time.time()
            # Each thread's last reading: one that ends before the process (at its shutdown)
            # keeps the figures it had then.
            last, last_at = threads(pid), first
            while True:
                sample = threads(pid)
                if not sample:
                    break
                last.update(sample)
                last_at = time.time()
                time.sleep(0.05)
            print(f'worker pid {pid}: ran {last_at - first:.2f} s', flush=True)
            for name, on_cpu, waiting, slices in sorted(last.values(), key=lambda t: -t[1]):
                if on_cpu > 5e7:
                    print(f'  {name:16s} on a CPU {on_cpu / 1e9:6.2f} s   waiting for one {waiting / 1e9:6.2f} s   {slices} slices', flush=True)
        time.sleep(0.05)


if __name__ == '__main__':
    main()
