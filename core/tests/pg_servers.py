"""A PostgreSQL primary and a streaming replica of the tests' own.

Made from the installed server binaries (initdb, pg_basebackup, pg_ctl) in a
temporary directory, on free ports of 127.0.0.1, so the machine's own server,
its data and its authentication stay untouched. As root the servers run as
the ``postgres`` system user (PostgreSQL refuses to run as root).
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def bin_dir():
    """The directory of the installed PostgreSQL server binaries, or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Pair:
    """``start()`` a primary and a replica; ``stop()`` removes both."""

    def __init__(self, parent=None, settings=""):
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="aa-pg-", dir=parent))
        self.settings = settings  # more postgresql.conf lines (benchmarks)
        self.primary_port = _free_port()
        self.replica_port = _free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @classmethod
    def attach(cls, root, primary_port, replica_port):
        """The pair a benchmark left running in ``root`` (its ``--keep``)."""
        pair = cls.__new__(cls)
        pair.bin, pair.root, pair.settings = bin_dir(), Path(root), ""
        pair.primary_port, pair.replica_port = primary_port, replica_port
        pair.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return pair

    def _run(self, *args, check=True, timeout=120):
        result = subprocess.run(  # noqa: S603 (our own binaries and arguments)
            [*self.as_user, *map(str, args)],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode:
            raise RuntimeError(f"{Path(str(args[0])).name} failed: {result.stderr.strip()}")
        return result

    def _pg_ctl(self, data, port, action="start"):
        options = f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1"
        args = [self.bin / "pg_ctl", "-D", data, "-w", "-l", f"{data}.log"]
        if action == "start":
            args += ["-o", options, "start"]
        else:
            args += ["-m", "fast", action]
        return self._run(*args)

    def url(self, port, database="postgres"):
        return f"postgres://postgres@127.0.0.1:{port}/{database}"

    def start(self):
        return self.start_primary().start_replica()

    def start_primary(self):
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        primary = self.root / "primary"
        self._run(self.bin / "initdb", "-D", primary, "-U", "postgres", "--auth=trust", "--no-sync")
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(
                "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                f"{self.settings}\n"
            )
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self._pg_ctl(primary, self.primary_port)
        return self

    def start_replica(self, timeout=120):
        """A streaming replica of the running primary (pg_basebackup -R)."""
        replica = self.root / "replica"
        self._run(
            self.bin / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            self.primary_port,
            "-U",
            "postgres",
            "-D",
            replica,
            "-R",
            "-X",
            "stream",
            "--no-sync",
            "--checkpoint=fast",  # not a spread checkpoint: start at once
            timeout=timeout,
        )
        self._pg_ctl(replica, self.replica_port)
        return self

    def sql(self, port, statement, database="postgres"):
        """Run one statement with psql; its unaligned output."""
        result = self._run(
            self.bin / "psql",
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "postgres",
            "-d",
            database,
            "-Atc",
            statement,
        )
        return result.stdout.strip()

    def wait_replayed(self, timeout=30):
        """Until the replica has replayed everything the primary wrote."""
        target = self.sql(self.primary_port, "SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.sql(
                self.replica_port, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            )
            if done == "t":
                return
            time.sleep(0.1)
        raise TimeoutError("the replica did not catch up")

    def stop_replica(self):
        self._pg_ctl(self.root / "replica", self.replica_port, "stop")

    def stop(self):
        for name, port in (("replica", self.replica_port), ("primary", self.primary_port)):
            data = self.root / name
            if (data / "postmaster.pid").exists():
                self._pg_ctl(data, port, "stop")
        shutil.rmtree(self.root, ignore_errors=True)
