#!/usr/bin/env python3
"""Webhooky benchmark harness: Webhooky side by side with a hand-written baseline.

Run it through bench/run (which creates bench/.venv). See bench/README.md.

Every invocation starts a private PostgreSQL 15 cluster (fsync on) in /tmp, builds Webhooky in
release mode, compiles the C receiver, runs the scenario against Webhooky and the baseline
interleaved, and removes everything again (also on Ctrl-C, SIGTERM or failure).
"""
from __future__ import annotations

import argparse
import atexit
import datetime as dt
import hashlib
import http.client
import math
import os
import platform
import pwd
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PGBIN = Path("/usr/lib/postgresql/15/bin")
RESULTS = HERE / "results"
SEED_BODY = '{"eshop":"#account.eshopId#","email":"#customer.email#","credit":"#customer.credit#","custom":{"field":"vlastni_pole"}}'
SYSTEMS = ("webhooky", "baseline")
LABEL = {"webhooky": "Webhooky", "baseline": "baseline"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# ---------------------------------------------------------------------------------------------
# Process bookkeeping and clean-up: everything started is registered and ended at exit.
# ---------------------------------------------------------------------------------------------

_children: list[subprocess.Popen] = []
_cleanups: list = []


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def spawn(args, **kw) -> subprocess.Popen:
    # Own session: a Ctrl-C in the terminal reaches only the harness, which ends its children
    # in order (worker before receiver before PostgreSQL).
    proc = subprocess.Popen(args, start_new_session=True, **kw)
    _children.append(proc)
    return proc


def end_process(proc: subprocess.Popen, timeout: float = 15.0, sig=signal.SIGTERM) -> int | None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            pass
    if proc in _children:
        _children.remove(proc)
    return proc.returncode


def cleanup() -> None:
    for proc in reversed(list(_children)):
        end_process(proc, timeout=5)
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - clean-up must go on
            print(f"clean-up: {exc}", file=sys.stderr)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------------------------------------
# Command log: the exact commands of a scenario, for the report.
# ---------------------------------------------------------------------------------------------

class Commands:
    def __init__(self):
        self.seen: dict[str, None] = {}

    def add(self, cmd: str) -> None:
        self.seen.setdefault(cmd, None)

    def lines(self) -> list[str]:
        return list(self.seen)


COMMANDS = Commands()


def run(args, *, env=None, log_cmd=True, check=True, capture=False, timeout=None, quiet=False) -> subprocess.CompletedProcess:
    if log_cmd:
        COMMANDS.add(shlex.join(str(a) for a in args))
    out = subprocess.PIPE if capture or quiet else None
    res = subprocess.run([str(a) for a in args], env=env, stdout=out, stderr=subprocess.STDOUT if quiet else None,
                         text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"command failed ({res.returncode}): {shlex.join(str(a) for a in args)}\n{res.stdout or ''}")
    return res


# ---------------------------------------------------------------------------------------------
# /proc readings
# ---------------------------------------------------------------------------------------------

def proc_cpu_seconds(pid: int, children: bool = False) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14 -> index 11
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def machine_cpu() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, steal seconds) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def machine_speed(folder: Path) -> str:
    """How fast the machine is right now, for telling a fast hour of the shared host from a slow
    one: the median time of 300 `fdatasync`s of an 8 kB write in `folder` (the cluster's
    filesystem, as a commit's WAL flush), and SHA-256 throughput (median of 5 passes over 32 MB,
    one core; CPU steal lowers it), and the round trip of a byte to another process and back
    (wake-ups and system calls, which the virtual machine makes slower on some hours: most of
    a delivery's cost is of this kind)."""
    probe = folder / "speed-probe"
    flushes = []
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = os.urandom(8192)
        for _ in range(300):
            t0 = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            flushes.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)
    data = os.urandom(32 << 20)
    passes = []
    for _ in range(5):
        t0 = time.perf_counter()
        hashlib.sha256(data).digest()
        passes.append(time.perf_counter() - t0)
    # A byte to a child process and back over a socket pair: two wake-ups, four system calls.
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        while (byte := child.recv(1)):
            child.sendall(byte)
        os._exit(0)
    child.close()
    trips = []
    try:
        for _ in range(2000):
            t0 = time.perf_counter()
            parent.sendall(b"x")
            parent.recv(1)
            trips.append(time.perf_counter() - t0)
    finally:
        parent.close()
        os.waitpid(pid, 0)
    return (f"fdatasync of an 8 kB write {statistics.median(flushes) * 1e6:,.0f} µs (median of 300), "
            f"a round trip to another process {statistics.median(trips) * 1e6:,.1f} µs (median of 2,000), "
            f"SHA-256 {32 / statistics.median(passes):,.0f} MB/s on one core (median of 5), at the start")


class Meter:
    """CPU used during a run: by the worker, by PostgreSQL, by the rest of the bench (receiver,
    pgbench, the harness), and by everything else on this shared machine ("other"): the noise
    figure that tells a disturbed run from a clean one."""

    def __init__(self, cluster, worker_pid: int | None, receiver_pid: int | None):
        import resource  # noqa: PLC0415
        self._resource = resource
        self.cluster, self.worker_pid, self.receiver_pid = cluster, worker_pid, receiver_pid
        self.t0 = time.time()
        self.snap0 = self._snap()

    def _snap(self) -> dict:
        r = self._resource
        me, kids = r.getrusage(r.RUSAGE_SELF), r.getrusage(r.RUSAGE_CHILDREN)
        busy, steal = machine_cpu()
        return {
            "busy": busy, "steal": steal,
            "pg": self.cluster.cpu_seconds(),
            "worker": proc_cpu_seconds(self.worker_pid) if self.worker_pid else 0.0,
            "receiver": proc_cpu_seconds(self.receiver_pid) if self.receiver_pid else 0.0,
            "harness": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        }

    def stop(self) -> dict:
        a, b = self.snap0, self._snap()
        d = {k: b[k] - a[k] for k in a}
        ours = d["pg"] + d["worker"] + d["receiver"] + d["harness"]
        return {"wall": time.time() - self.t0, "worker": d["worker"], "pg": d["pg"], "bench": d["receiver"] + d["harness"],
                "other": max(0.0, d["busy"] - ours), "steal": d["steal"]}


# ---------------------------------------------------------------------------------------------
# The private PostgreSQL cluster
# ---------------------------------------------------------------------------------------------

class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.logfile = root / "postgresql.log"
        self.started = False

    def dsn(self, db: str) -> str:
        return f"host={self.root} port=5432 user=postgres dbname={db}"

    def url(self, db: str) -> str:
        # The URI form of dsn(), for --database-url (a libpq keyword string works as well).
        return self.dsn(db)

    def init(self, settings: dict[str, str]) -> None:
        pg = pwd.getpwnam("postgres")
        os.chown(self.root, pg.pw_uid, pg.pw_gid)
        # The folder and the socket only for postgres (and root, which runs the bench): with
        # trust authentication, any local user who could reach the socket would be superuser.
        os.chmod(self.root, 0o700)
        run(["runuser", "-u", "postgres", "--", PGBIN / "initdb", "-D", self.data, "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"], quiet=True)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# bench/harness.py\n")
            for key, value in {**settings, "unix_socket_directories": f"'{self.root}'", "unix_socket_permissions": "0700"}.items():
                f.write(f"{key} = {value}\n")
        _cleanups.append(self.stop)
        # pg_ctl daemonises the postmaster: its output goes to the log file, never to a pipe.
        with open(self.root / "pg_ctl.out", "w") as out:
            cmd = ["runuser", "-u", "postgres", "--", PGBIN / "pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "start"]
            COMMANDS.add(shlex.join(str(a) for a in cmd))
            subprocess.run([str(a) for a in cmd], stdout=out, stderr=subprocess.STDOUT, check=True, timeout=60)
        self.started = True

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def cpu_seconds(self) -> float:
        """CPU of the whole cluster: the postmaster, its live children, and (through the
        postmaster's cutime/cstime) every child that has exited."""
        pm = self.postmaster_pid()
        total = proc_cpu_seconds(pm, children=True)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                if int(stat[1]) == pm:
                    total += (int(stat[11]) + int(stat[12]) + int(stat[13]) + int(stat[14])) / CLK_TCK
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
        return total

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        res = subprocess.run(["runuser", "-u", "postgres", "--", str(PGBIN / "pg_ctl"), "-D", str(self.data),
                              "-m", "fast", "-w", "-t", "30", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if res.returncode != 0:
            try:
                os.kill(self.postmaster_pid(), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass

    def psql(self, db: str, *, sql: str | None = None, file: Path | None = None, variables: dict | None = None, log_cmd=True) -> str:
        args = [PGBIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.root, "-U", "postgres", "-d", db]
        for key, value in (variables or {}).items():
            args += ["-v", f"{key}={value}"]
        if sql is not None:
            args += ["-c", sql]
        if file is not None:
            args += ["-f", file]
        return run(args, capture=True, log_cmd=log_cmd).stdout

    def connect(self, db: str) -> psycopg.Connection:
        return psycopg.connect(self.dsn(db), autocommit=True)

    def scalar(self, db: str, sql: str, params=None):
        with self.connect(db) as conn:
            return conn.execute(sql, params).fetchone()[0]

    def execute(self, db: str, *statements: str) -> None:
        with self.connect(db) as conn:
            for sql in statements:
                COMMANDS.add(f"-- SQL in {db}: {sql}")
                conn.execute(sql)

    def clone(self, template: str, name: str) -> None:
        """A fresh database, an exact copy of `template` (data, statistics, hint bits)."""
        COMMANDS.add(f'-- SQL: CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY; CHECKPOINT')
        with self.connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')

    def drop(self, name: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wal_position(self) -> str:
        """Where the cluster's WAL ends now (every database's, autovacuum's included)."""
        return self.scalar("postgres", "SELECT pg_current_wal_insert_lsn()::text")

    def wal_since(self, start: str) -> float:
        """Bytes of WAL written since `start` (a ``wal_position``)."""
        return float(self.scalar("postgres", "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", (start,)))

    def checkpoint(self) -> None:
        with self.connect("postgres") as conn:
            conn.execute("CHECKPOINT")


# ---------------------------------------------------------------------------------------------
# The receiver
# ---------------------------------------------------------------------------------------------

class Receiver:
    def __init__(self, binary: Path, port: int, log_path: Path):
        self.log_path = log_path
        self.port = port
        portfile = log_path.with_suffix(".port")
        portfile.unlink(missing_ok=True)
        cmd = [str(binary), str(port), str(log_path), str(portfile)]
        COMMANDS.add(shlex.join(cmd[:1] + ["PORT", "LOGFILE", "PORTFILE"]))
        self.stderr = open(log_path.with_suffix(".stderr"), "w")
        env = dict(os.environ, RECEIVER_SAMPLE=str(log_path.with_suffix(".sample.http")))
        self.proc = spawn(cmd, stdout=self.stderr, stderr=self.stderr, env=env)
        deadline = time.time() + 10
        while not portfile.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"receiver did not start (see {self.stderr.name})")
            time.sleep(0.01)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def count(self) -> int:
        for attempt in range(3):
            try:
                self.conn.request("GET", "/_count")
                return int(self.conn.getresponse().read())
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                if attempt == 2:
                    raise
        return 0

    def wait_for(self, n: int, timeout: float, poll: float = 0.02) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.count() >= n:
                return True
            time.sleep(poll)
        return self.count() >= n

    def stop(self) -> list[tuple[int, str]]:
        self.conn.close()
        end_process(self.proc, timeout=30)
        self.stderr.close()
        arrivals = []
        with open(self.log_path) as f:
            for line in f:
                ts, _, ident = line.rstrip("\n").partition(" ")
                arrivals.append((int(ts), ident))
        return arrivals


def first_arrivals(arrivals: list[tuple[int, str]], prefix: str) -> tuple[dict[int, int], int, int]:
    """{id: first arrival in µs}, duplicates, foreign (requests not carrying `prefix`<id>)."""
    first: dict[int, int] = {}
    dups = foreign = 0
    for ts, ident in arrivals:
        if not ident.startswith(prefix):
            foreign += 1
            continue
        key = int(ident[len(prefix):])
        if key in first:
            dups += 1
            if ts < first[key]:
                first[key] = ts
        else:
            first[key] = ts
    return first, dups, foreign


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


# ---------------------------------------------------------------------------------------------
# Results: per-run figures, summarised as min / median / max, written as Markdown
# ---------------------------------------------------------------------------------------------

class Figure:
    def __init__(self, key: str, label: str, unit: str, better: str, fmt: str = "{:.1f}"):
        self.key, self.label, self.unit, self.better, self.fmt = key, label, unit, better, fmt


class Report:
    def __init__(self, scenario: str, args, env: dict):
        self.scenario = scenario
        self.args = args
        self.env = env
        self.sections: list[str] = []
        self.console: list[str] = []
        self.notes: list[str] = []

    def table(self, title: str, figures: list[Figure], values: dict[str, dict[str, list[float]]], systems=SYSTEMS,
              ratio: tuple[str, str] | None = ("webhooky", "baseline"), labels: dict[str, str] | None = None) -> None:
        labels = labels or LABEL
        head = ["figure"] + [f"{labels[s]} min / median / max" for s in systems]
        if ratio:
            head.append(f"{labels[ratio[0]]} / {labels[ratio[1]]} (median)")
        rows = []
        for fig in figures:
            row = [f"{fig.label} ({fig.unit})" + (" ↑" if fig.better == "higher" else " ↓" if fig.better == "lower" else "")]
            meds = {}
            for s in systems:
                vals = [v for v in values.get(fig.key, {}).get(s, []) if v is not None and not (isinstance(v, float) and math.isnan(v))]
                if vals:
                    meds[s] = statistics.median(vals)
                    row.append(" / ".join(fig.fmt.format(x) for x in (min(vals), meds[s], max(vals))))
                else:
                    row.append("n/a")
            if ratio:
                a, b = meds.get(ratio[0]), meds.get(ratio[1])
                row.append("" if not fig.better else f"{a / b:.2f}" if a is not None and b not in (None, 0) else "n/a")
            rows.append(row)
        self.add_table(title, head, rows)

    def add_table(self, title: str, head: list[str], rows: list[list[str]]) -> None:
        md = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        self.sections.append("\n".join(md))
        # Console: aligned columns.
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines = [title, "  " + "  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
        self.console.append("\n".join(lines))

    def raw_runs(self, title: str, runs: list[dict]) -> None:
        if not runs:
            return
        keys = list(runs[0].keys())
        for r in runs[1:]:
            for k in r:
                if k not in keys:
                    keys.append(k)
        rows = [[fmt_cell(r.get(k)) for k in keys] for r in runs]
        md = [f"#### {title}", "", "| " + " | ".join(keys) + " |", "|" + "|".join(["---"] * len(keys)) + "|"]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        self.sections.append("\n".join(md))

    def write(self, started: float) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        date = dt.date.today().isoformat()
        suffix = (("-diagnose" if self.args.diagnose else "") + (f"-c{self.args.clients}" if self.args.clients != 1 else "")
                  + ("-ab" if self.args.against else ""))
        path = unused_path(RESULTS / f"{date}-{self.scenario}{suffix}.md")
        elapsed = time.time() - started
        md = [f"# Benchmark: {self.scenario} ({date})", ""]
        md += [f"- {k}: {v}" for k, v in self.env.items()]
        md += [f"- harness wall time: {elapsed / 60:.1f} min", ""]
        md += ["Figures: min / median / max over the runs; ↑ higher is better, ↓ lower is better. "
               "Ratio = Webhooky median / baseline median. Runs were interleaved "
               "(Webhooky and baseline alternate, the order flipping every run). "
               "What each figure means: bench/README.md.", ""]
        for section in self.sections:
            md += [section, ""]
        if self.notes:
            md += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        md += ["## Commands", "", "```sh", f"bench/run {' '.join(sys.argv[1:])}", ""]
        md += COMMANDS.lines()
        md += ["```", ""]
        path.write_text("\n".join(md))
        print()
        for block in self.console:
            print(block)
            print()
        for n in self.notes:
            print(f"note: {n}")
        print("\nCommands:")
        for line in COMMANDS.lines():
            print("  " + line)
        print(f"\nwritten: {path.relative_to(REPO)}")
        return path


def unused_path(path: Path) -> Path:
    """`path`, or when a file of that name exists (a run of the same scenario earlier that day),
    the first free `<stem>-2.md`, `<stem>-3.md`...: a report never overwrites another."""
    number = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def fmt_cell(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.2f}"
    return str(v)


# ---------------------------------------------------------------------------------------------
# The bench itself
# ---------------------------------------------------------------------------------------------

PG_SETTINGS = {
    # Unix socket only, in the private folder.
    "listen_addresses": "''",
    "port": "5432",
    # Durability as in production: these are the defaults, written out to be explicit.
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    # Sized like a small production server for a 24 GB machine; no checkpoint during a run.
    "shared_buffers": "'1GB'",
    "max_wal_size": "'16GB'",
    "checkpoint_timeout": "'30min'",
    "max_connections": "100",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
}


# --diagnose: where the database's time goes. These add overhead: never compare diagnosed runs
# with normal ones.
DIAGNOSE_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.track_planning": "on",
    "track_functions": "all",
}


class Bench:
    def __init__(self, args):
        self.args = args
        self.n = args.customers
        self.started = time.time()
        stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        self.raw = RESULTS / "raw" / f"{stamp}-{args.scenario}"
        self.raw.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="webhooky-bench-", dir="/tmp"))
        _cleanups.append(lambda: shutil.rmtree(self.root, ignore_errors=True))
        self.cluster = Cluster(self.root)
        self.port = free_port()
        self.hook_url = f"http://127.0.0.1:{self.port}/hook"
        self.templates: set[str] = set()
        self.run_counter = 0
        self.diagnosed: list[tuple[str, list[str]]] = []

    # -- set-up -------------------------------------------------------------------------------

    def build(self) -> None:
        log("building Webhooky (release) and the receiver")
        run(["swift", "build", "-c", "release", "--product", "webhooky"], quiet=not self.args.verbose, timeout=1800)
        binpath = run(["swift", "build", "-c", "release", "--show-bin-path"], capture=True, log_cmd=False).stdout.strip()
        self.webhooky = Path(binpath) / "webhooky"
        self.receiver_bin = self.root / "receiver"
        run(["gcc", "-O2", "-Wall", "-o", self.receiver_bin, HERE / "receiver.c"])

    def start_cluster(self) -> None:
        log(f"starting PostgreSQL in {self.root}")
        settings = dict(PG_SETTINGS)
        if self.args.diagnose:
            settings.update(DIAGNOSE_SETTINGS)
        self.cluster.init(settings)
        if self.args.diagnose:
            self.cluster.execute("postgres", "CREATE EXTENSION pg_stat_statements")
        self.pg_version = self.cluster.scalar("postgres", "SHOW server_version")

    def env(self) -> dict:
        commit = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture=True, log_cmd=False).stdout.strip()
        dirty = run(["git", "-C", REPO, "status", "--porcelain", "--", "Sources", "sql", "Package.swift"],
                    capture=True, log_cmd=False).stdout.strip()
        cpu = "?"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        code = run(["git", "-C", REPO, "log", "-1", "--format=%h", "--", "Sources", "sql", "Package.swift"],
                   capture=True, log_cmd=False).stdout.strip()
        return {
            "commit": f"{commit} (Webhooky's code: {code})" + (" (Sources/sql modified)" if dirty else ""),
            "machine": f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
            "machine speed": machine_speed(self.cluster.root),
            "PostgreSQL": f"{self.pg_version}, fsync on, synchronous_commit on, shared_buffers 1GB, max_wal_size 16GB",
            "customers": f"{self.n:,}",
            "runs per system": str(self.args.runs),
            "baseline": (f"NOT the Python baseline: the Webhooky build `{self.args.against}` (--against), on Webhooky's schema "
                         "and data like the other column" if self.args.against else
                         "bench/baseline/worker.py (Python " + platform.python_version() + ", psycopg "
                         + psycopg.__version__ + ", aiohttp " + aiohttp_version() + "), batch 100, 64 in flight"),
            "Webhooky worker": (f"`webhooky run --allow-network 127.0.0.0/8 {self.args.worker_args}`" if self.args.worker_args else
                                "`webhooky run --allow-network 127.0.0.0/8` with its defaults (batch 100, 256 in flight, 64 per endpoint)"),
            **({"DIAGNOSE": "pg_stat_statements and track_functions on: figures NOT comparable with normal runs"} if self.args.diagnose else {}),
        }

    def template(self, system: str, pending_rounds: int = 0) -> str:
        """The template database of `system` with `pending_rounds` × N undelivered events."""
        name = f"tpl_{self.kind(system)}_{pending_rounds}"
        if name in self.templates:
            return name
        if pending_rounds == 0:
            self._base_template(system, name)
        else:
            base = self.template(system, 0)
            log(f"building {name}: {pending_rounds * self.n:,} pending deliveries")
            self.cluster.clone(base, name)
            for _ in range(pending_rounds):
                self.cluster.psql(name, sql="UPDATE ellity.customers SET credit = credit + 1")
                self.cluster.psql(name, sql="VACUUM ellity.customers")
            self.cluster.psql(name, sql="VACUUM (FREEZE, ANALYZE)")
        self.templates.add(name)
        return name

    def _base_template(self, system: str, name: str) -> None:
        log(f"building {name}: schema and {self.n:,} customers")
        self.cluster.execute("postgres", f'CREATE DATABASE "{name}"')
        if self.kind(system) == "webhooky":
            run([self.webhooky, "migrate", "--database-url", self.cluster.url(name)], quiet=True)
            self.cluster.psql(name, file=REPO / "sql" / "examples" / "ellity.sql")
            self.cluster.psql(name, file=HERE / "sql" / "data.sql", variables={"customers": self.n})
            self.cluster.psql(name, sql="INSERT INTO webhooky.webhooks (name, event, url, body) VALUES "
                                         f"('bench', 'customer.credit_changed', '{self.hook_url}', '{SEED_BODY}')")
        else:
            self.cluster.psql(name, file=HERE / "baseline" / "schema.sql")
            self.cluster.psql(name, file=HERE / "sql" / "data.sql", variables={"customers": self.n})
        self.cluster.psql(name, sql="VACUUM (FREEZE, ANALYZE)")

    def fresh_db(self, system: str, pending_rounds: int = 0) -> str:
        tpl = self.template(system, pending_rounds)
        name = f"run_{system}"
        self.cluster.clone(tpl, name)
        self.cluster.checkpoint()
        return name

    def wait_quiet(self) -> float:
        """The machine is shared: before a run, wait (up to --quiet-wait seconds) until other
        processes have used less than 0.15 of a core for 2 seconds in a row. Returns the wait."""
        start = time.time()
        if self.args.quiet_wait <= 0:
            return 0.0
        streak = 0
        while True:
            b0, pg0 = machine_cpu()[0], self.cluster.cpu_seconds()
            time.sleep(1)
            b1, pg1 = machine_cpu()[0], self.cluster.cpu_seconds()
            other = (b1 - b0) - (pg1 - pg0)
            streak = streak + 1 if other < 0.15 else 0
            if streak >= 2:
                break
            if time.time() - start > self.args.quiet_wait:
                log(f"  machine still busy after {self.args.quiet_wait} s (other processes use {other:.2f} cores): running anyway")
                break
        return time.time() - start

    def diagnose_dump(self, db: str, tag: str) -> None:
        """With --diagnose: the statements and functions that took the database's time in this
        run (pg_stat_statements, pg_stat_user_functions), into the raw folder; then reset."""
        if not self.args.diagnose:
            return
        time.sleep(1.1)  # backends flush their statistics at most once a second
        lines = []
        with self.cluster.connect("postgres") as conn:
            rows = conn.execute(
                "SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric * 1000, 1), rows, "
                "round(total_plan_time::numeric, 1), regexp_replace(query, '\\s+', ' ', 'g') "
                "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s) "
                "ORDER BY total_exec_time DESC LIMIT 30", (db,)).fetchall()
            lines.append("calls\ttotal_ms\tmean_us\trows\tplan_ms\tquery")
            lines += ["\t".join(str(c) for c in r) for r in rows]
            conn.execute("SELECT pg_stat_statements_reset()")
        with self.cluster.connect(db) as conn:
            rows = conn.execute(
                "SELECT schemaname || '.' || funcname, calls, round(total_time::numeric, 1), round(self_time::numeric, 1), "
                "round((self_time / nullif(calls, 0) * 1000)::numeric, 1) FROM pg_stat_user_functions ORDER BY self_time DESC").fetchall()
            lines += ["", "function\tcalls\ttotal_ms\tself_ms\tself_us_per_call"]
            lines += ["\t".join(str(c) for c in r) for r in rows]
        (self.raw / f"{tag}.diagnose.tsv").write_text("\n".join(lines) + "\n")
        self.diagnosed.append((tag, lines))

    # -- workers ------------------------------------------------------------------------------

    def start_worker(self, system: str, db: str, tag: str) -> tuple[subprocess.Popen, float]:
        logfile = open(self.raw / f"{tag}.worker.log", "w")
        if self.kind(system) == "webhooky":
            # The receiver listens on 127.0.0.1, which the worker refuses unless allowed.
            binary = self.webhooky if system == "webhooky" else self.args.against
            cmd = [str(binary), "run", "--database-url", self.cluster.url(db), "--allow-network", "127.0.0.0/8",
                   *shlex.split(self.args.worker_args)]
        else:
            cmd = [sys.executable, str(HERE / "baseline" / "worker.py"), "--dsn", self.cluster.dsn(db), "--url", self.hook_url]
        COMMANDS.add(shlex.join(cmd) + " 2> WORKER_LOG")
        t0 = time.time()
        proc = spawn(cmd, stdout=logfile, stderr=logfile)
        proc.logfile = logfile  # type: ignore[attr-defined]
        return proc, t0

    def stop_worker(self, proc: subprocess.Popen) -> None:
        code = end_process(proc, timeout=20)
        proc.logfile.close()  # type: ignore[attr-defined]
        if code not in (0, -signal.SIGTERM):
            log(f"warning: worker exited with status {code}")

    def pending(self, system: str, db: str) -> int:
        if self.kind(system) == "webhooky":
            return self.cluster.scalar(db, "SELECT count(*) FROM webhooky.deliveries WHERE state IN ('pending', 'sending')")
        return self.cluster.scalar(db, "SELECT count(*) FROM baseline.outbox WHERE state IN ('pending', 'sending')")

    def wait_recorded(self, system: str, db: str, timeout: float = 60) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.pending(system, db) == 0:
                return True
            time.sleep(0.1)
        return False

    def created_times(self, system: str, db: str) -> dict[int, int]:
        """{delivery or outbox id: event created_at in µs since 1970}."""
        if self.kind(system) == "webhooky":
            sql = ("SELECT d.id, (extract(epoch FROM e.created_at) * 1000000)::bigint "
                   "FROM webhooky.deliveries d JOIN webhooky.events e ON e.id = d.event_id")
        else:
            sql = "SELECT id, (extract(epoch FROM created_at) * 1000000)::bigint FROM baseline.outbox"
        with self.cluster.connect(db) as conn:
            return dict(conn.execute(sql).fetchall())

    def prefix(self, system: str, db: str) -> str:
        """What the system's webhook-id holds before the delivery (or outbox) id."""
        if self.kind(system) != "webhooky":
            return "out_"
        # The installation's prefix (schema version 24 on): every delivery of a run carries it.
        return self.cluster.scalar(db, "SELECT message_id_prefix FROM webhooky.installation")

    def kind(self, system: str) -> str:
        """Which worker and schema `system` runs: "webhooky", or "baseline" (the Python worker on
        its own schema); with --against, the baseline's place goes to that Webhooky build."""
        return "webhooky" if system == "webhooky" or self.args.against else "baseline"

    def order(self, i: int) -> tuple[str, str]:
        return SYSTEMS if i % 2 == 0 else tuple(reversed(SYSTEMS))

    def tag(self, system: str, what: str) -> str:
        self.run_counter += 1
        return f"{self.run_counter:03d}-{what}-{system}"

    def pgbench(self, db: str, clients: int, seconds: int, rate: int | None, tag: str) -> dict:
        threads = min(clients, 2)
        cmd = [str(PGBIN / "pgbench"), "-h", str(self.root), "-U", "postgres", "-n", "-M", "prepared",
               "-c", str(clients), "-j", str(threads), "-T", str(seconds), "-D", f"customers={self.n}",
               "-f", str(HERE / "sql" / "update_credit.sql")]
        if rate:
            cmd += ["-R", str(rate)]
        cmd.append(db)
        COMMANDS.add(shlex.join(cmd))
        t0 = time.time()
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=seconds + 120)
        t1 = time.time()
        (self.raw / f"{tag}.pgbench.txt").write_text(res.stdout)
        if res.returncode != 0:
            raise RuntimeError(f"pgbench failed:\n{res.stdout}")
        out = {"start": t0, "end": t1, "tps": None, "tx": None, "lat_ms": None}
        for line in res.stdout.splitlines():
            line = line.strip()
            if line.startswith("tps =") and out["tps"] is None:
                out["tps"] = float(line.split()[2])
            elif line.startswith("number of transactions actually processed:"):
                out["tx"] = int(line.split(":")[1].split("/")[0].strip())
            elif line.startswith("latency average ="):
                out["lat_ms"] = float(line.split("=")[1].split()[0])
            elif line.startswith("number of failed transactions:"):
                out["failed"] = int(line.split(":")[1].split()[0])
        return out

    # -- scenario: drain ----------------------------------------------------------------------

    def drain_once(self, system: str, rounds: int = 1, what: str = "drain", window: float | None = None) -> dict:
        """Starts the worker on `rounds` × N pending deliveries. Returns the run's figures.
        With `window`, stops after that many seconds instead of waiting for the last one."""
        expected = rounds * self.n
        db = self.fresh_db(system, rounds)
        tag = self.tag(system, what)
        waited = self.wait_quiet()
        receiver = Receiver(self.receiver_bin, self.port, self.raw / f"{tag}.arrivals")
        meter = Meter(self.cluster, None, receiver.proc.pid)
        wal_start = self.cluster.wal_position()
        worker, t0 = self.start_worker(system, db, tag)
        meter.worker_pid = worker.pid
        rss_samples = []
        try:
            deadline = t0 + (window if window else max(300, expected / 500))
            got = 0
            while time.time() < deadline:
                got = receiver.count()
                if got >= expected:
                    break
                try:
                    rss_samples.append((time.time() - t0, proc_status_kb(worker.pid, "VmRSS")))
                except FileNotFoundError:
                    raise RuntimeError(f"worker died (see {self.raw / (tag + '.worker.log')})")
                time.sleep(0.05)
            t_seen = time.time()
            recorded = self.wait_recorded(system, db, timeout=60) if not window else None
            t_recorded = time.time()
            wal_bytes = self.cluster.wal_since(wal_start)
            cpu = proc_cpu_seconds(worker.pid)
            hwm = proc_status_kb(worker.pid, "VmHWM")
            rss = proc_status_kb(worker.pid, "VmRSS")
            cpu_use = meter.stop()
            self.diagnose_dump(db, tag)
        finally:
            self.stop_worker(worker)
            arrivals = receiver.stop()
        first, dups, foreign = first_arrivals(arrivals, self.prefix(system, db))
        delivered = len(first)
        times = sorted(first.values())
        res = {"system": system, "delivered": delivered, "duplicates": dups, "foreign": foreign}
        if window:
            in_window = sum(1 for t in times if t <= (t0 + window) * 1e6)
            res.update({
                "window_s": window,
                "rate_per_s": in_window / window,
                "rss_end_mb": rss / 1024,
                "rss_peak_mb": hwm / 1024,
                "cpu_s": cpu,
            })
        else:
            last = times[-1] / 1e6 if times else float("nan")
            first_t = times[0] / 1e6 if times else float("nan")
            res.update({
                "complete": delivered == expected,
                "recorded": recorded,
                "wall_s": last - t0,
                "rate_per_s": delivered / (last - t0),
                "first_arrival_s": first_t - t0,
                "rate_first_last_per_s": delivered / (last - first_t) if delivered > 1 else float("nan"),
                "record_lag_s": t_recorded - t_seen,
                "worker_cpu_s": cpu,
                "worker_cpu_per_1k": cpu / delivered * 1000 if delivered else float("nan"),
                "pg_cpu_s": cpu_use["pg"],
                "pg_cpu_per_1k": cpu_use["pg"] / delivered * 1000 if delivered else float("nan"),
                "wal_per_delivery_b": wal_bytes / delivered if delivered else float("nan"),
                "rss_peak_mb": hwm / 1024,
            })
        res["other_cpu_s"] = cpu_use["other"]
        res["steal_s"] = cpu_use["steal"]
        res["quiet_wait_s"] = waited
        (self.raw / f"{tag}.rss.tsv").write_text("".join(f"{t:.2f}\t{kb}\n" for t, kb in rss_samples))
        self.cluster.drop(db)
        log(f"  {what} {system}: " + ", ".join(f"{k}={fmt_cell(v)}" for k, v in res.items() if k != "system"))
        return res

    def scenario_drain(self, report: Report) -> None:
        for s in SYSTEMS:
            self.template(s, 1)
        runs = []
        for i in range(self.args.runs):
            for s in self.order(i):
                runs.append(self.drain_once(s))
        figs = [
            Figure("rate_per_s", "deliveries/s, worker start to last arrival", "1/s", "higher", "{:,.0f}"),
            Figure("rate_first_last_per_s", "deliveries/s, first to last arrival", "1/s", "higher", "{:,.0f}"),
            Figure("wall_s", "time to deliver all", "s", "lower", "{:.2f}"),
            Figure("first_arrival_s", "worker start to first arrival", "s", "lower", "{:.3f}"),
            Figure("worker_cpu_per_1k", "worker CPU per 1,000 deliveries", "CPU s", "lower", "{:.3f}"),
            Figure("pg_cpu_per_1k", "PostgreSQL CPU per 1,000 deliveries", "CPU s", "lower", "{:.3f}"),
            Figure("wal_per_delivery_b", "WAL written per delivery, worker start to all recorded", "bytes", "lower", "{:,.0f}"),
            Figure("record_lag_s", "last arrival seen to all recorded in the database", "s", "lower", "{:.2f}"),
            Figure("rss_peak_mb", "worker peak RSS (VmHWM)", "MB", "lower", "{:.1f}"),
            NOISE,
        ]
        report.table(f"Drain: {self.n:,} pending deliveries, then the worker starts", figs, collect(runs, figs))
        report.raw_runs("Runs", runs)
        bad = [r for r in runs if not r["complete"] or r["duplicates"] or r["foreign"]]
        report.notes.append("every run delivered every delivery exactly once" if not bad
                            else f"INCOMPLETE or duplicated runs: {bad}")

    # -- scenarios: flood and steady (pgbench while the worker runs) ---------------------------

    def load_once(self, system: str, clients: int, seconds: int, rate: int | None, what: str) -> dict:
        db = self.fresh_db(system, 0)
        tag = self.tag(system, what)
        receiver = Receiver(self.receiver_bin, self.port, self.raw / f"{tag}.arrivals")
        worker, _ = self.start_worker(system, db, tag)
        try:
            time.sleep(1)  # let the worker connect
            waited = self.wait_quiet()
            if worker.poll() is not None:
                raise RuntimeError(f"worker died (see {self.raw / (tag + '.worker.log')})")
            meter = Meter(self.cluster, worker.pid, receiver.proc.pid)
            wal_start = self.cluster.wal_position()
            bench = self.pgbench(db, clients, seconds, rate, tag)
            arrived_at_end = receiver.count()
            cpu_use = meter.stop()
            wal_bytes = self.cluster.wal_since(wal_start)
            committed = self.cluster.scalar(db, "SELECT count(*) FROM webhooky.deliveries" if self.kind(system) == "webhooky"
                                            else "SELECT count(*) FROM baseline.outbox")
            complete = receiver.wait_for(committed, timeout=max(120, committed / 500))
            hwm = proc_status_kb(worker.pid, "VmHWM")
            self.diagnose_dump(db, tag)
        finally:
            self.stop_worker(worker)
            arrivals = receiver.stop()
        created = self.created_times(system, db)
        prefix = self.prefix(system, db)
        self.cluster.drop(db)
        first, dups, foreign = first_arrivals(arrivals, prefix)
        lat = sorted((first[k] - created[k]) / 1000 for k in first if k in created)
        missing = len(set(created) - set(first))
        in_window = sum(1 for t in first.values() if bench["start"] * 1e6 <= t <= bench["end"] * 1e6)
        backlog_end = sum(1 for k, c in created.items() if first.get(k, 1 << 62) > bench["end"] * 1e6)
        last = max(first.values()) / 1e6 if first else float("nan")
        res = {
            "system": system,
            "tps": bench["tps"],
            "tx": bench["tx"],
            "events": committed,
            "delivered": len(first),
            "missing": missing,
            "duplicates": dups,
            "deliveries_per_s": in_window / (bench["end"] - bench["start"]),
            "backlog_end": backlog_end,
            "backlog_end_poll": committed - arrived_at_end,
            "all_arrived_in_time": complete,
            "drain_after_s": max(0.0, last - bench["end"]),
            "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99),
            "max_ms": lat[-1] if lat else float("nan"),
            "worker_cpu_s": cpu_use["worker"],
            "pg_cpu_s": cpu_use["pg"],
            "wal_per_tx_b": wal_bytes / bench["tx"] if bench["tx"] else float("nan"),
            "bench_cpu_s": cpu_use["bench"],
            "other_cpu_s": cpu_use["other"],
            "steal_s": cpu_use["steal"],
            "rss_peak_mb": hwm / 1024,
            "quiet_wait_s": waited,
        }
        log(f"  {what} {system}: " + ", ".join(f"{k}={fmt_cell(v)}" for k, v in res.items() if k != "system"))
        return res

    def scenario_flood(self, report: Report) -> None:
        for s in SYSTEMS:
            self.template(s, 0)
        secs = self.args.duration or 30
        runs = []
        for i in range(self.args.runs):
            for s in self.order(i):
                runs.append(self.load_once(s, 4, secs, None, "flood"))
        figs = [
            Figure("tps", "commit rate reached (pgbench TPS)", "tx/s", "higher", "{:,.0f}"),
            Figure("deliveries_per_s", "deliveries/s while pgbench runs", "1/s", "higher", "{:,.0f}"),
            Figure("backlog_end", "backlog when pgbench stops (committed, not yet arrived)", "deliveries", "lower", "{:,.0f}"),
            Figure("drain_after_s", "time from pgbench end to last arrival", "s", "lower", "{:.2f}"),
            *latency_figures("{:,.1f}"),
            Figure("worker_cpu_s", "worker CPU during pgbench", "CPU s", "lower", "{:.1f}"),
            Figure("pg_cpu_s", "PostgreSQL CPU during pgbench", "CPU s", "lower", "{:.1f}"),
            Figure("wal_per_tx_b", "WAL written during pgbench per business transaction (the worker's included)", "bytes", "lower", "{:,.0f}"),
            Figure("rss_peak_mb", "worker peak RSS", "MB", "lower", "{:.1f}"),
            NOISE,
        ]
        report.table(f"Flood: pgbench -c 4 -j 2 -T {secs}, as fast as it goes, worker running", figs, collect(runs, figs))
        report.raw_runs("Runs", runs)
        self._completeness_note(report, runs)

    def scenario_steady(self, report: Report) -> None:
        for s in SYSTEMS:
            self.template(s, 0)
        secs = self.args.duration or 30
        figs = [
            Figure("tps", "commit rate reached (pgbench TPS)", "tx/s", "higher", "{:,.0f}"),
            *latency_figures("{:.2f}"),
            Figure("backlog_end", "backlog when pgbench stops", "deliveries", "lower", "{:,.0f}"),
            Figure("worker_cpu_s", "worker CPU during pgbench", "CPU s", "lower", "{:.2f}"),
            Figure("pg_cpu_s", "PostgreSQL CPU during pgbench", "CPU s", "lower", "{:.1f}"),
            NOISE,
        ]
        all_runs = []
        for rate, clients in ((300, 2), (2000, 4)):
            runs = []
            for i in range(self.args.runs):
                for s in self.order(i):
                    runs.append(self.load_once(s, clients, secs, rate, f"steady{rate}"))
            report.table(f"Steady {rate}/s: pgbench -R {rate} -c {clients} -j 2 -T {secs}, worker running",
                         figs, collect(runs, figs))
            report.raw_runs(f"Runs at {rate}/s", runs)
            all_runs += runs
        self._completeness_note(report, all_runs)

    def _completeness_note(self, report: Report, runs: list[dict]) -> None:
        bad = [r for r in runs if r["missing"] or r["duplicates"] or r["events"] != r["tx"]]
        if not bad:
            report.notes.append("every committed change produced exactly one event, and every delivery arrived exactly once")
        else:
            report.notes.append("PROBLEMS (missing, duplicated, or events != pgbench transactions): "
                                + "; ".join(f"{r['system']}: tx={r['tx']} events={r['events']} missing={r['missing']} dups={r['duplicates']}" for r in bad))

    # -- scenario: cost to the business transaction ---------------------------------------------

    def scenario_cost(self, report: Report) -> None:
        for s in SYSTEMS:
            self.template(s, 0)
        secs = self.args.duration or 10
        clients_list = (1, 4, 16)
        variants = ["none", "webhooky-0", "webhooky-1", "webhooky-5", "baseline"]
        # Webhooky's trigger definitions, as installed by sql/examples/ellity.sql.
        tpl = self.template("webhooky", 0)
        with self.cluster.connect(tpl) as conn:
            trigger_defs = [r[0] for r in conn.execute(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'ellity.customers'::regclass AND NOT tgisinternal ORDER BY tgname")]
        COMMANDS.add("-- Webhooky's triggers, re-created per variant: " + "; ".join(trigger_defs))
        webhook_sql = ("INSERT INTO webhooky.webhooks (name, event, url, body) SELECT 'bench ' || i, 'customer.credit_changed', "
                       f"'{self.hook_url}', '{SEED_BODY}' FROM generate_series(1, %d) i")
        values: dict[tuple[str, int], list[float]] = {}
        runs = []
        for i in range(self.args.runs):
            for clients in clients_list:
                order = variants[:] if i % 2 == 0 else variants[::-1]
                rot = (clients_list.index(clients) + i) % len(order)
                order = order[rot:] + order[:rot]
                for v in order:
                    system = "baseline" if v == "baseline" else "webhooky"
                    db = self.fresh_db(system, 0)
                    if v == "none":
                        self.cluster.execute(db, "DROP TRIGGER customer_credit_changed ON ellity.customers",
                                             "DROP TRIGGER customer_tier_changed ON ellity.customers")
                    elif v.startswith("webhooky-"):
                        k = int(v.split("-")[1])
                        self.cluster.execute(db, "DELETE FROM webhooky.webhooks")
                        if k:
                            self.cluster.execute(db, webhook_sql % k)
                        # What a running worker's heartbeat does within 5 s (no worker runs here).
                        self.cluster.execute(db, "SELECT webhooky.refresh_wanted_events()")
                    self.cluster.checkpoint()
                    tag = self.tag(v, f"cost-c{clients}")
                    waited = self.wait_quiet()
                    meter = Meter(self.cluster, None, None)
                    b = self.pgbench(db, clients, secs, None, tag)
                    cpu_use = meter.stop()
                    self.diagnose_dump(db, tag)
                    if v.startswith("webhooky"):
                        k = int(v.split("-")[1])
                        events = self.cluster.scalar(db, "SELECT count(*) FROM webhooky.events")
                        # No worker runs here: the deliveries each event needs are its webhook_ids
                        # (the worker creates the rows when it fans the event out).
                        deliveries = self.cluster.scalar(db, "SELECT coalesce(sum(cardinality(webhook_ids)), 0) FROM webhooky.events")
                        ok = (events == (b["tx"] if k else 0)) and deliveries == k * b["tx"]
                    elif v == "baseline":
                        events = deliveries = self.cluster.scalar(db, "SELECT count(*) FROM baseline.outbox")
                        ok = events == b["tx"]
                    else:
                        events = deliveries = 0
                        ok = True
                    self.cluster.drop(db)
                    values.setdefault((v, clients), []).append(b["tps"])
                    runs.append({"run": i + 1, "clients": clients, "variant": v, "tps": b["tps"], "tx": b["tx"],
                                 "events": events, "deliveries": deliveries, "consistent": ok,
                                 "pg_cpu_s": cpu_use["pg"], "pgbench_cpu_s": cpu_use["bench"],
                                 "other_cpu_s": cpu_use["other"], "steal_s": cpu_use["steal"], "quiet_wait_s": waited})
                    log(f"  cost c={clients} {v}: tps={b['tps']:.0f} events={events} deliveries={deliveries}")
        head = ["clients"] + [f"{v} TPS min / median / max" for v in variants] + [f"{v} / none" for v in variants[1:]]
        rows = []
        for clients in clients_list:
            row = [str(clients)]
            med = {}
            for v in variants:
                vals = values.get((v, clients), [])
                med[v] = statistics.median(vals) if vals else float("nan")
                row.append(" / ".join(f"{x:,.0f}" for x in (min(vals), med[v], max(vals))) if vals else "n/a")
            for v in variants[1:]:
                row.append(f"{med[v] / med['none']:.2f}")
            rows.append(row)
        report.add_table(f"Cost to the business transaction: pgbench TPS of one credit UPDATE per transaction, -T {secs}, no worker", head, rows)
        # Per-run ratios (each variant against the 'none' run of the same round), as a robustness check.
        ratio_rows = []
        for clients in clients_list:
            row = [str(clients)]
            for v in variants[1:]:
                rs = [a / b for a, b in zip(values[(v, clients)], values[("none", clients)])]
                row.append(" / ".join(f"{x:.2f}" for x in (min(rs), statistics.median(rs), max(rs))))
            ratio_rows.append(row)
        report.add_table("Same, as per-round ratios to no trigger (min / median / max)", ["clients"] + [f"{v} / none" for v in variants[1:]], ratio_rows)
        report.raw_runs("Runs", runs)
        bad = [r for r in runs if not r["consistent"]]
        report.notes.append("variants: none = no trigger on ellity.customers; webhooky-K = the reference domain's triggers "
                            "(sql/examples/ellity.sql) with K enabled webhooks for customer.credit_changed; "
                            "baseline = bench/baseline/schema.sql's trigger (outbox insert + pg_notify) in the baseline database")
        report.notes.append("each run uses a fresh copy of the template database (so no table grows between runs) and starts after a CHECKPOINT")
        report.notes.append("every run wrote exactly one event per transaction and one delivery per webhook" if not bad
                            else f"INCONSISTENT runs: {bad}")

    # -- scenario: triggers (where the cost of Webhooky's trigger goes) ---------------------------

    TRIGGER_VARIANTS = {
        # name: (function body between BEGIN and RETURN NULL, what it shows)
        "none": (None, "no trigger"),
        "empty": ("", "an empty PL/pgSQL AFTER trigger: the trigger machinery alone"),
        "check-inline": ("IF EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.event = 'customer.credit_changed' AND w.enabled "
                         "AND (w.account_id IS NULL OR w.account_id = NEW.eshop_id)) THEN RAISE 'unexpected'; END IF;",
                         "has_webhooks' query written inline in the trigger"),
        "check-sql-fn": ("IF bench_scratch.has_webhooks_plain('customer.credit_changed', NEW.eshop_id) THEN RAISE 'unexpected'; END IF;",
                         "the same query in a plain LANGUAGE sql function (no SECURITY DEFINER, no SET)"),
        "check-shipped": ("IF webhooky.has_webhooks('customer.credit_changed', NEW.eshop_id) THEN RAISE 'unexpected'; END IF;",
                          "webhooky.has_webhooks as shipped (PL/pgSQL, SECURITY DEFINER, SET search_path)"),
        "payload-inline": ("p := jsonb_build_object('customer', jsonb_build_object('id', NEW.id, 'email', NEW.email, 'credit', NEW.credit, "
                           "'group', (SELECT jsonb_build_object('id', g.id, 'name', g.name) FROM ellity.customer_groups g WHERE g.id = NEW.group_id), "
                           "'tier', (SELECT jsonb_build_object('id', t.id, 'name', t.name) FROM ellity.vip_tiers t WHERE t.id = NEW.tier_id)), "
                           "'creditChange', jsonb_build_object('value', NEW.credit - OLD.credit, 'previous', OLD.credit), "
                           "'account', jsonb_build_object('eshopId', NEW.eshop_id));",
                           "the credit_changed payload built inline (as the baseline's trigger does), not stored"),
        "payload-sql-fn": ("p := ellity.customer_event_payload(NEW, OLD);",
                           "the same payload through ellity.customer_event_payload (PL/pgSQL, as shipped), not stored"),
        "when-false": ("", "a row trigger that never fires (its WHEN clause is false): PostgreSQL's own work for it", "false"),
        "record-constant": ("INSERT INTO webhooky.events (event, account_id, payload, webhook_ids) "
                            "VALUES ('customer.credit_changed', NEW.eshop_id, '{}', '{1}');",
                            "the least a trigger that records the event does: one constant row into webhooky.events"),
        "message-constant": ("PERFORM pg_logical_emit_message(true, 'webhooky', '{\"e\":\"customer.credit_changed\"}');", "writes the event as a constant transactional logical message (pg_logical_emit_message) instead of a row: what a WAL-only record would cost"),
        "message-payload": ("PERFORM pg_logical_emit_message(true, 'webhooky', jsonb_build_object('customer', jsonb_build_object('id', NEW.id, 'email', NEW.email, 'credit', NEW.credit), 'creditChange', jsonb_build_object('value', NEW.credit - OLD.credit, 'previous', OLD.credit), 'account', jsonb_build_object('eshopId', NEW.eshop_id))::text);", "builds a payload without the group and tier lookups and writes it as a logical message"),
        "record-payload": ("INSERT INTO webhooky.events (event, account_id, payload, webhook_ids) VALUES ('customer.credit_changed', NEW.eshop_id, jsonb_build_object('customer', jsonb_build_object('id', NEW.id, 'email', NEW.email, 'credit', NEW.credit), 'creditChange', jsonb_build_object('value', NEW.credit - OLD.credit, 'previous', OLD.credit), 'account', jsonb_build_object('eshopId', NEW.eshop_id)), '{1}');", "builds a payload without the group and tier lookups and inserts it as a webhooky.events row"),
        "reference-0": (None, "the reference domain's triggers as shipped, 0 webhooks (= cost's webhooky-0): their WHEN condition is false"),
        "reference-1": (None, "the reference domain's triggers as shipped, 1 webhook (= cost's webhooky-1)"),
    }

    # Per-statement cost, without commits or client round trips: pgbench's TPS at 1 client moves
    # by a few percent from run to run (the WAL flush of every commit), more than a WHEN clause
    # costs; the same UPDATE repeated inside one DO block measures the trigger's own work.
    STATEMENT_LOOP = 20_000

    def per_statement_us(self, db: str) -> float:
        sql = (f"DO $$ BEGIN FOR i IN 1..{self.STATEMENT_LOOP} LOOP "
               f"UPDATE ellity.customers SET credit = credit + 1 WHERE id = (i * 7919) % {self.n} + 1; END LOOP; END $$")
        COMMANDS.add(f"-- SQL per variant, timed by the harness: {sql}")
        with self.cluster.connect(db) as conn:
            t0 = time.perf_counter()
            conn.execute(sql)
            return (time.perf_counter() - t0) * 1e6 / self.STATEMENT_LOOP

    def scenario_triggers(self, report: Report) -> None:
        tpl = self.template("webhooky", 0)
        secs = self.args.duration or 10
        with self.cluster.connect(tpl) as conn:
            trigger_defs = [r[0] for r in conn.execute(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'ellity.customers'::regclass AND NOT tgisinternal ORDER BY tgname")]
        variants = list(self.TRIGGER_VARIANTS)
        if self.args.variants:
            chosen = list(dict.fromkeys(v.strip() for v in self.args.variants.split(",") if v.strip()))
            unknown = [v for v in chosen if v not in self.TRIGGER_VARIANTS]
            if unknown:
                raise SystemExit(f"bench: unknown --variants {', '.join(unknown)}; known: {', '.join(variants)}")
            variants = ["none"] + [v for v in chosen if v != "none"]
        values: dict[str, list[float]] = {}
        statement_values: dict[str, list[float]] = {}
        runs = []
        for i in range(self.args.runs):
            order = variants if i % 2 == 0 else variants[::-1]
            for v in order:
                body, _, *when = self.TRIGGER_VARIANTS[v]
                db = self.fresh_db("webhooky", 0)
                stmts = []
                if not v.startswith("reference"):
                    stmts += ["DROP TRIGGER customer_credit_changed ON ellity.customers",
                              "DROP TRIGGER customer_tier_changed ON ellity.customers"]
                if v != "reference-1":
                    stmts.append("DELETE FROM webhooky.webhooks")
                stmts.append("SELECT webhooky.refresh_wanted_events()")  # as a running worker's heartbeat does
                stmts += ["CREATE SCHEMA bench_scratch",
                          "CREATE FUNCTION bench_scratch.has_webhooks_plain(event text, account_id text DEFAULT NULL) RETURNS boolean "
                          "LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM webhooky.webhooks w WHERE w.event = $1 AND w.enabled "
                          "AND (w.account_id IS NULL OR w.account_id = $2)) $$"]
                if body is not None:
                    stmts += [f"CREATE FUNCTION bench_scratch.t() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE p jsonb; BEGIN {body} RETURN NULL; END $$",
                              "CREATE TRIGGER t AFTER UPDATE OF credit ON ellity.customers FOR EACH ROW "
                              f"WHEN (OLD.credit IS DISTINCT FROM NEW.credit{''.join(' AND ' + w for w in when)}) EXECUTE FUNCTION bench_scratch.t()"]
                self.cluster.execute(db, *stmts)
                self.cluster.checkpoint()
                tag = self.tag(v, "triggers")
                waited = self.wait_quiet()
                meter = Meter(self.cluster, None, None)
                b = self.pgbench(db, self.args.clients, secs, None, tag)
                cpu_use = meter.stop()
                per_statement = self.per_statement_us(db)
                self.cluster.drop(db)
                values.setdefault(v, []).append(b["tps"])
                statement_values.setdefault(v, []).append(per_statement)
                runs.append({"run": i + 1, "variant": v, "tps": b["tps"], "us_per_tx": 1e6 / b["tps"],
                             "us_per_update_in_loop": per_statement, "other_cpu_s": cpu_use["other"], "quiet_wait_s": waited})
                log(f"  triggers {v}: tps={b['tps']:.0f} ({1e6 / b['tps']:.0f} µs per transaction), "
                    f"{per_statement:.2f} µs per UPDATE in one transaction")
        base = statistics.median(values["none"])
        statement_base = statistics.median(statement_values["none"])
        rows = []
        for v in variants:
            vals = values[v]
            med = statistics.median(vals)
            loop = statement_values[v]
            loop_med = statistics.median(loop)
            rows.append([v, self.TRIGGER_VARIANTS[v][1], " / ".join(f"{x:,.0f}" for x in (min(vals), med, max(vals))),
                         f"{med / base:.2f}", f"{1e6 / med:.0f}", f"{1e6 / med - 1e6 / base:+.0f}",
                         " / ".join(f"{x:.2f}" for x in (min(loop), loop_med, max(loop))), f"{loop_med - statement_base:+.2f}"])
        report.add_table(f"Where the trigger's cost goes: pgbench -c {self.args.clients} -T {secs}, one credit UPDATE per transaction, no worker; "
                         f"then {self.STATEMENT_LOOP:,} such UPDATEs in one DO block (one transaction: no commit, no round trip)",
                         ["variant", "what the AFTER UPDATE OF credit trigger does", "TPS min / median / max", "TPS / none (medians)",
                          "µs per transaction (median)", "µs added vs none",
                          "µs per UPDATE in one transaction min / median / max", "µs added vs none (medians)"], rows)
        report.raw_runs("Runs", runs)
        report.notes.append("every variant has 0 enabled webhooks except reference-1, and nothing is recorded except by "
                            "reference-1 and the record-* variants (whose rows no worker sends); the message-* variants' WAL records "
                            "are read by nobody (wal_level replica, no slot); "
                            "the reference-* variants keep the triggers of sql/examples/ellity.sql: " + "; ".join(trigger_defs))

    # -- scenario: memory ---------------------------------------------------------------------

    def idle_once(self, system: str, seconds: float = 5) -> dict:
        db = self.fresh_db(system, 0)
        tag = self.tag(system, "idle")
        self.wait_quiet()
        worker, _ = self.start_worker(system, db, tag)
        try:
            time.sleep(seconds)
            if worker.poll() is not None:
                raise RuntimeError(f"worker died (see {self.raw / (tag + '.worker.log')})")
            rss = proc_status_kb(worker.pid, "VmRSS")
            cpu = proc_cpu_seconds(worker.pid)
        finally:
            self.stop_worker(worker)
        self.cluster.drop(db)
        res = {"system": system, "idle_rss_mb": rss / 1024, "idle_cpu_s": cpu}
        log(f"  idle {system}: rss={rss / 1024:.1f} MB cpu={cpu:.2f}s after {seconds:.0f}s")
        return res

    def scenario_memory(self, report: Report) -> None:
        window = self.args.duration or 30
        for s in SYSTEMS:
            self.template(s, 0)
            self.template(s, 1)
            self.template(s, 10)
        idle, drain, big = [], [], []
        for i in range(self.args.runs):
            for s in self.order(i):
                idle.append(self.idle_once(s))
                drain.append(self.drain_once(s, 1, "memdrain"))
                big.append(self.drain_once(s, 10, "mem1m", window=window))
        merged = {}
        for label, runs in (("idle", idle), ("drain", drain), ("big", big)):
            for r in runs:
                for k, v in r.items():
                    if k != "system":
                        merged.setdefault(f"{label}.{k}", {}).setdefault(r["system"], []).append(v)
        figs = [
            Figure("idle.idle_rss_mb", "RSS idle (5 s after start, nothing to do)", "MB", "lower"),
            Figure("drain.rss_peak_mb", f"peak RSS (VmHWM) draining {self.n:,} pending", "MB", "lower"),
            Figure("big.rss_peak_mb", f"peak RSS, first {window} s with {10 * self.n:,} pending", "MB", "lower"),
            Figure("big.rss_end_mb", f"RSS after {window} s with {10 * self.n:,} pending", "MB", "lower"),
            Figure("big.rate_per_s", f"deliveries/s over those {window} s", "1/s", "higher", "{:,.0f}"),
            Figure("drain.rate_per_s", f"(for reference) deliveries/s draining {self.n:,}", "1/s", "higher", "{:,.0f}"),
        ]
        report.table("Memory: worker RSS from /proc/<pid>/status", figs, merged)
        report.raw_runs("Idle runs", idle)
        report.raw_runs(f"Drain runs ({self.n:,} pending)", drain)
        report.raw_runs(f"Runs with {10 * self.n:,} pending ({window} s window)", big)
        report.notes.append(f"the {10 * self.n:,}-pending runs stop the worker after {window} s (a full drain would take minutes per run); "
                            "RSS over time is in bench/results/raw/*mem1m*.rss.tsv")

    # -- the receiver itself --------------------------------------------------------------------

    def scenario_receiver(self, report: Report) -> None:
        wrk = shutil.which("wrk")
        if not wrk:
            raise SystemExit("bench/run receiver needs wrk: apt-get install wrk")
        script = self.root / "post.lua"
        script.write_text('wrk.method = "POST"\n'
                          'wrk.body = \'{"eshop":"eshop-1","email":"customer1@example.cz","credit":"10.50","custom":{"field":"vlastni_pole"}}\'\n'
                          'wrk.headers["Content-Type"] = "application/json"\n'
                          'wrk.headers["webhook-id"] = "msg_1"\n')
        values: dict[str, dict[str, list[float]]] = {"rps": {"receiver": []}, "cpu": {"receiver": []}}
        runs = []
        for i in range(self.args.runs):
            tag = self.tag("receiver", "wrk")
            receiver = Receiver(self.receiver_bin, self.port, self.raw / f"{tag}.arrivals")
            cmd = [wrk, "-t", "1", "-c", "64", "-d", "5s", "-s", str(script), f"http://127.0.0.1:{self.port}/hook"]
            COMMANDS.add(shlex.join(cmd))
            cpu0 = proc_cpu_seconds(receiver.proc.pid)
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
            cpu1 = proc_cpu_seconds(receiver.proc.pid)
            n = len(receiver.stop())
            rps = float(next(l for l in out.splitlines() if l.startswith("Requests/sec:")).split()[1])
            values["rps"]["receiver"].append(rps)
            values["cpu"]["receiver"].append((cpu1 - cpu0) / 5)
            runs.append({"run": i + 1, "requests_per_s": rps, "recorded": n, "receiver_cpu_share": (cpu1 - cpu0) / 5})
        report.table("Receiver: wrk -t 1 -c 64, 5 s, POST with the seed body", [
            Figure("rps", "requests/s answered and recorded", "1/s", "higher", "{:,.0f}"),
            Figure("cpu", "receiver CPU (share of one core) meanwhile", "cores", "lower", "{:.2f}"),
        ], values, systems=("receiver",), ratio=None, labels={"receiver": "receiver"})
        report.raw_runs("Runs", runs)
        report.notes.append("wrk runs on the same 2 cores: the receiver's own capacity is about requests/s divided by its CPU share")


def latency_figures(fmt: str) -> list[Figure]:
    """Commit-to-arrival latency p50, p95 and p99 in `fmt`, and the maximum with one decimal."""
    figs = [Figure(f"p{q}_ms", f"commit-to-arrival latency p{q}", "ms", "lower", fmt) for q in (50, 95, 99)]
    return figs + [Figure("max_ms", "commit-to-arrival latency max", "ms", "lower", "{:.1f}")]


NOISE = Figure("other_cpu_s", "CPU used meanwhile by processes outside the bench (noise)", "CPU s", "", "{:.2f}")


def collect(runs: list[dict], figs: list[Figure]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        for f in figs:
            if f.key in r:
                out.setdefault(f.key, {}).setdefault(r["system"], []).append(r[f.key])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aiohttp_version() -> str:
    try:
        import aiohttp  # noqa: PLC0415
        return aiohttp.__version__
    except ImportError:
        return "?"


SCENARIOS = ("drain", "flood", "steady", "cost", "memory")
ALL = ("receiver",) + SCENARIOS
EXTRA = ("triggers",)  # not part of "all"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description="Webhooky vs a hand-written baseline. See bench/README.md.")
    parser.add_argument("scenario", choices=ALL + EXTRA + ("all",))
    parser.add_argument("--runs", type=int, default=3, help="runs per system (interleaved) [3]")
    parser.add_argument("--customers", type=int, default=100_000, help="customers, = pending deliveries of the drain [100000]")
    parser.add_argument("--duration", type=int, default=None,
                        help="seconds of pgbench (flood/steady 30, cost 10) or of the 1M window (memory 30)")
    parser.add_argument("--quiet-wait", type=int, default=30,
                        help="before each run, wait up to this many seconds for other processes on the machine to "
                             "go quiet (0: do not wait) [30]")
    parser.add_argument("--clients", type=int, default=1, help="pgbench clients of the triggers scenario [1]")
    parser.add_argument("--variants", default="",
                        help="the triggers scenario's variants, comma-separated (none is always run) [all]")
    parser.add_argument("--worker-args", default="", help="more options for `webhooky run`, e.g. \"--log-level notice\" [none]")
    parser.add_argument("--against", metavar="BINARY", type=Path, default=None,
                        help="A/B of Webhooky itself: a `webhooky` binary (another commit's release build) takes the "
                             "baseline's place, on Webhooky's schema and data; drain, flood, steady and memory only")
    parser.add_argument("--verbose", action="store_true", help="show the build output")
    parser.add_argument("--diagnose", action="store_true",
                        help="record pg_stat_statements and function timings per run in the raw folder (slows the database: "
                             "figures are not comparable with normal runs)")
    args = parser.parse_args()
    if args.against:
        if not (args.against.is_file() and os.access(args.against, os.X_OK)):
            parser.error(f"--against {args.against}: not an executable file (build one: see bench/README.md, \"A/B\")")
        if args.scenario not in ("drain", "flood", "steady", "memory"):
            parser.error(f"--against works with drain, flood, steady and memory, not {args.scenario}")
        args.against = args.against.resolve()
        LABEL["baseline"] = "the --against build"

    if os.geteuid() != 0:
        raise SystemExit("bench/run needs root (it runs PostgreSQL as the postgres user through runuser)")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(cleanup)

    scenarios = ALL if args.scenario == "all" else (args.scenario,)
    if args.scenario == "all" and not shutil.which("wrk"):
        log("wrk is not installed (apt-get install wrk): skipping the receiver check")
        scenarios = SCENARIOS
    try:
        for scenario in scenarios:
            global COMMANDS
            COMMANDS = Commands()
            sub = argparse.Namespace(**vars(args))
            sub.scenario = scenario
            bench = Bench(sub)
            started = time.time()
            try:
                bench.build()
                bench.start_cluster()
                report = Report(scenario, sub, bench.env())
                log(f"scenario {scenario}: {sub.runs} runs per system, raw logs in {bench.raw.relative_to(REPO)}")
                getattr(bench, f"scenario_{scenario}")(report)
                for tag, lines in bench.diagnosed:
                    report.sections.append(f"#### --diagnose: {tag}\n\n```\n" + "\n".join(l[:300] for l in lines) + "\n```")
                report.write(started)
            finally:
                cleanup()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        cleanup()
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
