"""Faults an operator meets, through the CLI: a full disk under the home (DuckDB, MLflow, the
checkpoint download, the corpus snapshot) is one line naming the path, its free space and the
fix, exit 2, the run marked failed and a re-run resuming; readers wait for a writer's lock; a
killed run reads stale within a few heartbeats; the CLI names the corpus version the flow ran.

ENOSPC is injected at each write (the call that writes, failing as it does on a full disk); one
test also fills a real tmpfs, in a private mount namespace that vanishes with its process, where
the machine allows it.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from falconer_cli.app import USER_ERROR
from falconer_cli.main import app
from falconer_core.data import DEMO_PLAN_PATH
from falconer_core.disk import as_disk_error, disk_problem
from falconer_core.errors import DiskError
from falconer_core.registry.artifacts import CHECKPOINT_CONFIG
from falconer_core.store import Store
from falconer_core.store.connection import Connection
from tests.mining_corpus import tweets

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, *phrases: str) -> str:
    """Exit 2 and exactly one `error: …` line holding each phrase, no traceback: that line."""
    assert result.exit_code == USER_ERROR, (result.exit_code, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])
    assert "Traceback" not in result.output
    return errors[0]


def enospc(path: object = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(path)] if path is not None else []))


# -- telling a full disk from other failures ----------------------------------------------------


def test_disk_problems_are_found_through_the_chain_and_in_library_text(tmp_path):
    assert disk_problem(enospc(tmp_path / "f")) == ("space", str(tmp_path / "f"))
    wal = duckdb.TransactionException(f'Failed to commit: Could not write file "{tmp_path}/x.wal": No space left on device')
    assert disk_problem(wal) == ("space", f"{tmp_path}/x.wal")
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "y"))
        except OSError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert disk_problem(wrapped) == ("permission", str(tmp_path / "y"))
    assert disk_problem(RuntimeError("(sqlite3.OperationalError) database or disk is full")) == ("space", None)
    # an HTTP 403 is not a disk; neither is a corpus we cannot read, when only writes under a folder count
    assert disk_problem(RuntimeError("403: Permission denied for this model")) is None
    unreadable = PermissionError(errno.EACCES, "Permission denied", "/data/corpus.csv")
    assert as_disk_error(unreadable, within=tmp_path) is None
    error = as_disk_error(enospc(), tmp_path)
    assert isinstance(error, DiskError)
    assert str(error).startswith(f"no space left on device writing {tmp_path} (")
    assert "free there" in str(error) and "--home" in str(error) and "resumes" in str(error)


def test_a_failed_commit_reports_the_full_disk_not_the_failed_rollback(tmp_path, monkeypatch):
    """DuckDB ends the transaction when its commit cannot write the WAL; the rollback after it
    then fails with 'no transaction is active', which used to hide the cause."""
    path = tmp_path / "falconer.duckdb"
    real_open = Connection._open
    monkeypatch.setattr(Connection, "_open", lambda self, *a: FullDiskOnCommit(real_open(self, *a), f"{self.path}.wal"))
    with Store(path) as store:
        store.upsert_run("r", "execute", status="running")
        with pytest.raises(DiskError, match=f"no space left on device writing {path}.wal"):
            store.shard_outputs.commit_part("r", 0, _part("r", 0), work_key=None, n_texts=1, seconds=0.1)
        assert store.completed_shards("r") == []


def _part(run_id: str, shard: int):
    import pyarrow as pa

    from falconer_core.execution.parts import PART_SCHEMA

    row = {"run_id": run_id, "shard": shard, "text_id": "t1", "field": "f", "value": "v", "span_start": None,
           "span_end": None, "confidence": 0.9, "model_version": "m/1", "plan_hash": "p", "step": "s",
           "source": "proxy", "in_band": False}
    return pa.Table.from_pylist([row], schema=PART_SCHEMA)


class FullDiskOnCommit:
    """A DuckDB connection whose commit of output rows fails as it does on a full disk: DuckDB
    ends the transaction, then reports the log write it could not make."""

    def __init__(self, con: duckdb.DuckDBPyConnection, wal: str) -> None:
        self._con, self._wal, self._outputs = con, wal, False

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    def begin(self):
        self._outputs = False
        return self._con.begin()

    def execute(self, sql: str, params=None):
        self._outputs = self._outputs or "INSERT INTO outputs" in sql
        return self._con.execute(sql, params or [])

    def commit(self):
        if self._outputs:
            self._con.rollback()
            raise duckdb.TransactionException(
                f'TransactionContext Error: Failed to commit: Could not write file "{self._wal}": No space left on device'
            )
        return self._con.commit()


_FILL_AND_WRITE = """
import os, sys
from falconer_core.store import Store
from falconer_core.errors import DiskError
from falconer_core.registry.artifacts import CHECKPOINT_CONFIG
home = sys.argv[1]
with Store(f"{home}/falconer.duckdb") as store:
    store.upsert_run("r", "execute", status="running")
with open(f"{home}/fill", "wb") as f:
    try:
        while True:
            f.write(b"x" * 65536)
    except OSError:
        pass
os.truncate(f"{home}/fill", os.path.getsize(f"{home}/fill") - 64 * 1024)
try:
    with Store(f"{home}/falconer.duckdb") as store, store.db.transaction():
        store.db.execute("CREATE TABLE big AS SELECT repeat('x', 1000) || range AS v FROM range(100000)")
except DiskError as exc:
    print("DiskError:", exc)
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_a_real_full_tmpfs_under_the_store_is_one_disk_error(tmp_path):
    """A 20 MB tmpfs, filled to 64 KB free, in a mount namespace of its own process: the mount
    cannot outlive the test. Skipped where the machine does not let us mount one."""
    home = tmp_path / "tmpfs"
    home.mkdir()
    script = (f"mount -t tmpfs -o size=20m tmpfs {home} && OMP_NUM_THREADS=1 {sys.executable} -c \"$0\" {home}; "
              f"status=$?; umount {home}; exit $status")
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script, _FILL_AND_WRITE], capture_output=True, text=True,
                              timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail("the tmpfs writer hung")
    if done.returncode != 0 and "DiskError" not in done.stdout and any(w in done.stderr for w in ("unshare", "mount")):
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert f"DiskError: no space left on device writing {home}/falconer.duckdb" in done.stdout, (done.stdout, done.stderr)
    assert "free there" in done.stdout
    assert not any(home.iterdir()), "the tmpfs must be gone with its namespace"


# -- through the CLI: execute on a registered tiny model -----------------------------------------


@pytest.fixture(scope="module")
def world(prefect_harness, tmp_path_factory, tiny_encoder_path):
    """A home with a registered (untrained) tiny metamodel and a 40-tweet corpus."""
    from prefect.logging.configuration import ensure_logging_setup

    from falconer_core.metamodel import Metamodel
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from falconer_core.settings import Settings

    ensure_logging_setup()
    home = tmp_path_factory.mktemp("faults-home")
    corpus = home / "tweets.csv"
    tweets(40).to_csv(corpus, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FALCONER_HOME", str(home))
        checkpoint = Metamodel.from_base(str(tiny_encoder_path)).save(home / "tiny-checkpoint")
        Registry.from_settings(Settings()).log_fine_tune(
            checkpoint, model_name="falconer-metamodel", parent=None, base_model=str(tiny_encoder_path),
            plan=Plan.load(DEMO_PLAN_PATH), annotation_set_hash="faults", n_annotations=1, annotator="human",
            corpus_id="c-faults", settings={"epochs": 1}, metrics={"mean_f1": 0.5},
        )
    return home, corpus


@pytest.fixture
def home(world, monkeypatch):
    folder, corpus = world
    monkeypatch.setenv("FALCONER_HOME", str(folder))
    return folder, corpus


def execute(corpus: Path, run_id: str):
    return invoke("execute", "falconer-metamodel/1", "--corpus", corpus, "--id-column", "tweet_id",
                  "--run-id", run_id, "--shard-size", "10", "--records", "0")


def run_record(home: Path, run_id: str) -> dict:
    with Store(home / "falconer.duckdb") as store:
        record = store.run(run_id) or {}
        rows = store.query("SELECT count(DISTINCT text_id) AS n FROM outputs WHERE run_id = ?", [run_id])["n"].iloc[0]
        return {**record, "texts_out": int(rows), "done": store.completed_shards(run_id)}


def test_a_full_disk_while_the_store_commits_is_one_line_and_the_run_resumes(home, monkeypatch):
    folder, corpus = home
    real_open = Connection._open
    with monkeypatch.context() as full:
        full.setattr(Connection, "_open", lambda self, *a: FullDiskOnCommit(real_open(self, *a), f"{self.path}.wal"))
        failed = execute(corpus, "disk-store")
    one_error_line(failed, f"no space left on device writing {folder}/falconer.duckdb.wal (", "free there",
                   "--home / FALCONER_HOME", "run the same command again")
    assert "cannot rollback" not in failed.output
    assert run_record(folder, "disk-store")["status"] == "failed"
    again = execute(corpus, "disk-store")
    assert again.exit_code == 0, (again.output, again.exception)
    record = run_record(folder, "disk-store")
    assert record["status"] == "completed" and record["texts_out"] == 40 and record["done"] == [0, 1, 2, 3]


def test_a_full_disk_while_the_checkpoint_downloads_is_one_line_in_the_checkpoints_dir(home, monkeypatch, tmp_path):
    """The download goes to FALCONER_CHECKPOINTS_DIR, and a full disk there is named as such
    (MLflow used to call it a wrong artifact path)."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    folder, corpus = home
    checkpoints = tmp_path / "my-checkpoints"
    monkeypatch.setenv("FALCONER_CHECKPOINTS_DIR", str(checkpoints))

    def full(self, remote_file_path, local_path):
        raise enospc(local_path)

    with monkeypatch.context() as patch:
        patch.setattr(LocalArtifactRepository, "_download_file", full)
        failed = execute(corpus, "disk-download")
    line = one_error_line(failed, f"no space left on device writing {checkpoints}/falconer-metamodel/v1-", "free there")
    assert "ensure that the path is correct" not in failed.output, line
    assert not list(checkpoints.rglob(CHECKPOINT_CONFIG)), "no half checkpoint is left behind"
    again = execute(corpus, "disk-download")
    assert again.exit_code == 0, (again.output, again.exception)
    assert list(checkpoints.glob(f"falconer-metamodel/v1-*/{CHECKPOINT_CONFIG}")), "downloaded into FALCONER_CHECKPOINTS_DIR"
    assert run_record(folder, "disk-download")["status"] == "completed"


def test_a_full_disk_while_the_corpus_is_snapshotted_is_one_line_and_leaves_no_partial(home, monkeypatch):
    import falconer_core.corpus.snapshot as snapshot

    folder, _ = home
    corpus = folder / "tweets-snapshot.csv"
    tweets(30, seed=3).to_csv(corpus, index=False)

    def full(chunks, path):
        Path(path).write_bytes(b"PAR1")  # a started part, as a real write leaves
        raise enospc()  # pyarrow names no file

    with monkeypatch.context() as patch:
        patch.setattr(snapshot, "_write", full)
        failed = execute(corpus, "disk-snapshot")
    one_error_line(failed, f"no space left on device writing {folder}/corpora (", "free there")
    assert not [p for p in (folder / "corpora").iterdir() if "partial" in p.name]
    again = execute(corpus, "disk-snapshot")
    assert again.exit_code == 0, (again.output, again.exception)
    assert run_record(folder, "disk-snapshot")["texts_out"] == 30


def test_a_full_disk_while_mlflow_logs_is_a_disk_error(home, monkeypatch, tiny_encoder_path):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from falconer_core.metamodel import Metamodel
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from falconer_core.settings import Settings

    folder, _ = home

    def full(self, local_dir, artifact_path=None):
        raise enospc(Path(self.artifact_dir) / (artifact_path or ""))

    checkpoint = Metamodel.from_base(str(tiny_encoder_path)).save(folder / "tiny-checkpoint-2")
    monkeypatch.setattr(LocalArtifactRepository, "log_artifacts", full)
    with pytest.raises(DiskError, match=f"no space left on device writing {folder.resolve()}/mlartifacts/"):
        Registry.from_settings(Settings()).log_fine_tune(
            checkpoint, model_name="falconer-metamodel", parent=None, base_model=str(tiny_encoder_path),
            plan=Plan.load(DEMO_PLAN_PATH), annotation_set_hash="faults-2", n_annotations=1, annotator="human",
            corpus_id="c-faults", settings={"epochs": 1}, metrics={"mean_f1": 0.5},
        )


def test_the_cli_turns_a_full_mlflow_database_into_one_line(home, monkeypatch):
    """Whatever library reports it, "database or disk is full" ends as one line, exit 2."""
    from mlflow.exceptions import MlflowException

    from falconer_core.registry import Registry

    folder, _ = home

    def full(self, ref):
        raise MlflowException("(sqlite3.OperationalError) database or disk is full")

    monkeypatch.setattr(Registry, "lineage", full)
    one_error_line(invoke("lineage", "falconer-metamodel/1"), f"no space left on device writing {folder} (")


def test_the_cli_names_the_corpus_version_the_flow_ran(home, monkeypatch):
    """The file is rewritten between the CLI's check and the flow's snapshot: the flow runs the
    new version, and the CLI says so instead of leaving the old count standing."""
    import falconer_cli.pipeline as pipeline

    folder, _ = home
    corpus = folder / "tweets-changing.csv"
    tweets(20, seed=5).to_csv(corpus, index=False)
    checked = pipeline._check_corpus

    def check_then_rewrite(path, text_column, id_column):
        found = checked(path, text_column, id_column)
        tweets(30, seed=5).to_csv(corpus, index=False)
        os.utime(corpus, (time.time() + 5, time.time() + 5))  # a new fingerprint even within mtime resolution
        return found

    monkeypatch.setattr(pipeline, "_check_corpus", check_then_rewrite)
    result = execute(corpus, "changed-corpus")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "over 20 texts" in result.stderr  # what the check announced
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "(30 texts)" in warning[0] and "(20 texts)" in warning[0], result.stderr
    assert run_record(folder, "changed-corpus")["texts_out"] == 30
    monkeypatch.setattr(pipeline, "_check_corpus", checked)
    same = execute(corpus, "changed-corpus")
    assert same.exit_code == 0 and "ran corpus version" in same.stderr and "(30 texts)" in same.stderr


# -- readers while a writer holds the store -------------------------------------------------------


_HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2])); c.close()"


def hold_store(path: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the store's write lock, as a run does while it commits."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def store_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FALCONER_HOME", str(home))
    with Store(home / "falconer.duckdb") as store:
        store.upsert_run("run-a", "execute", status="completed", model_version="m/1")
    return home


@pytest.mark.parametrize("command", ["runs", "outputs"])
def test_readers_wait_for_a_writer_with_a_note(store_home, monkeypatch, command):
    monkeypatch.setenv("FALCONER_STORE_WAIT_SECONDS", "30")
    holder = hold_store(store_home / "falconer.duckdb", 1.5)
    try:
        started = time.monotonic()
        result = invoke(command)
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert "Could not set lock" not in result.output
    assert "being written by another process; waiting up to 30 s" in result.stderr, result.stderr
    assert waited >= 0.5
    if command == "runs":
        assert result.exit_code == 0 and "run-a" in result.stdout, result.output
    else:  # the store has a run but no outputs: the reader got in and answered
        one_error_line(result, "holds no outputs yet")


def test_readers_give_up_after_the_bounded_wait_with_one_line(store_home, monkeypatch):
    monkeypatch.setenv("FALCONER_STORE_WAIT_SECONDS", "1")
    holder = hold_store(store_home / "falconer.duckdb", 60)
    try:
        started = time.monotonic()
        result = invoke("runs")
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    one_error_line(result, "cannot open the store")
    assert 0.9 <= waited < 15


# -- heartbeats -----------------------------------------------------------------------------------


def test_stale_after_two_and_a_half_heartbeats(monkeypatch, tmp_path):
    from datetime import timedelta

    from falconer_core.clock import now
    from falconer_core.settings import HEARTBEAT_SECONDS, Settings

    assert Settings().stale_after_seconds == 2.5 * HEARTBEAT_SECONDS == 37.5
    monkeypatch.setenv("FALCONER_HEARTBEAT_SECONDS", "10")
    with Store(tmp_path / "s.duckdb") as store:
        for run_id, silent in (("alive", 20), ("dead", 30)):
            store.upsert_run(run_id, "execute", status="running")
            store.db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [now() - timedelta(seconds=silent), run_id])
        status = store.run_progress().set_index("run_id")["status"].to_dict()
    assert status == {"alive": "running", "dead": "stale"}


def test_a_live_run_beats_while_a_long_shard_runs_and_the_thread_ends_with_it(tmp_path):
    from falconer_core.store.sessions import heartbeat

    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        store.upsert_run("r", "execute", status="running")
        first = store.run("r")["heartbeat_at"]
    with heartbeat(path, "r", every=0.2):
        time.sleep(1.0)  # a shard that runs for five heartbeats, committing nothing
    with Store(path) as store:
        assert store.run("r")["heartbeat_at"] > first
    assert not [t for t in __import__("threading").enumerate() if t.name.startswith("falconer-heartbeat")]


_BEATING = """
import sys, time
from falconer_core.store import Store
from falconer_core.store.sessions import heartbeat
path = sys.argv[1]
with Store(path) as store:
    store.upsert_run("killed", "execute", status="running")
with heartbeat(path, "killed", every=0.2):
    print("beating", flush=True)
    time.sleep(120)
"""


def test_a_killed_run_reads_stale_within_a_few_heartbeats(tmp_path, monkeypatch):
    monkeypatch.setenv("FALCONER_HEARTBEAT_SECONDS", "0.2")  # stale after 0.5 s
    path = tmp_path / "s.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", _BEATING, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "beating"
        time.sleep(1.0)  # past the stale threshold: only the beats keep it running
        with Store(path, wait_seconds=10) as store:
            assert store.run_progress().set_index("run_id").loc["killed", "status"] == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)
        with Store(path, wait_seconds=10) as store:
            assert store.run_progress().set_index("run_id").loc["killed", "status"] == "stale"
    finally:
        proc.kill()
        proc.wait()
