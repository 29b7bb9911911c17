"""The stage cache shared by several nodes through an S3-compatible store (moto's server, started here): entries
one node commits are reused by another, a writer killed mid-upload leaves nothing a reader trusts, and a dead
node's lease expires. Two "nodes" are two local cache directories (and working directories) on this machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.marked_processes import pids_of, stop_marked

pytest.importorskip("s3fs", reason="the cluster extra: pip install -e '.[cluster]'")
pytest.importorskip("moto", reason="the test extra: pip install -e '.[test]'")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]

BUCKET = "tflite-cache"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """TERM, then KILL, our own process group only."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port with one bucket; yields the environment a client needs."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.3)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        _stop(proc)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _node(tmp: Path, name: str, url: str, lease_s: float = 300.0):  # type: ignore[no-untyped-def]
    from pipelines.engine.cache import open_cache

    runtime = {"cache_dir": url, "use_cache": True, "local_cache_dir": str(tmp / name), "lease_s": lease_s}
    return open_cache(runtime)


def _commit(cache, stage: str, key: str, payload: bytes):  # type: ignore[no-untyped-def]
    from stages.result import StageResult

    work = cache.new_workdir(stage, key)
    (work / "sub").mkdir()
    (work / "sub" / "model.bin").write_bytes(payload)
    return cache.commit(stage, key, work, StageResult(files={"model": "sub/model.bin"}, meta={"n": len(payload)}))


def test_node_b_reuses_node_a_entries_and_never_trusts_half_written_ones(s3: dict[str, str], tmp_path: Path) -> None:
    from pipelines.cache_check import check

    url = f"s3://{BUCKET}/unit"
    a, b = _node(tmp_path, "a", url), _node(tmp_path, "b", url)
    for i in range(3):
        _commit(a, "convert", f"k{i}", os.urandom(5000 + i))
    assert a.report()["computed"] == 3
    for i in range(3):
        hit = b.lookup("convert", f"k{i}")
        assert (
            hit is not None
            and hit.path("model").read_bytes() == (tmp_path / f"a/convert/k{i}/sub/model.bin").read_bytes()
        )
        assert hit.meta == {"n": 5000 + i}
    assert b.report()["remote_hits"] == 3 and b.report()["computed"] == 0
    assert b.lookup("convert", "k0") is not None and b.report()["local_hits"] == 1  # now in B's working copy

    # A writer killed mid-upload: files under the final prefix, no manifest. Never trusted, reported by check.
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.pipe_file(f"{BUCKET}/unit/convert/half/sub/model.bin", b"partial")
    assert b.lookup("convert", "half") is None and not b.has("convert", "half")
    # A damaged entry (a file rewritten after its manifest): refused, then recomputed by the next commit.
    fs.pipe_file(f"{BUCKET}/unit/convert/k2/sub/model.bin", b"tampered")
    c = _node(tmp_path, "c", url)
    assert c.lookup("convert", "k2") is None
    found = check(url)
    assert sorted(found["ok"]) == ["convert/k0", "convert/k1"]
    assert found["half_written"] == ["convert/half"]
    assert [d.split(":")[0] for d in found["damaged"]] == ["convert/k2"]
    _commit(c, "convert", "k2", b"fresh")
    assert check(url)["damaged"] == []
    # the command a user runs: exit 0 with half-written garbage listed
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cache_check", "check", url], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "3 entries ok, 0 damaged, 1 half-written" in proc.stdout, proc.stdout + proc.stderr


def test_a_dead_nodes_lease_expires_and_a_live_one_is_waited_for(s3: dict[str, str], tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/leases"
    import fsspec

    fs = fsspec.filesystem("s3")
    # node A died holding the lease (its expiry is 2 s away): B waits for it, then takes over and computes
    dead = {"owner": "node-a:1:dead", "expires_at": time.time() + 2}
    fs.pipe_file(f"{BUCKET}/leases/.leases/convert-k.json", json.dumps(dead).encode())
    b = _node(tmp_path, "b", url, lease_s=30)
    started = time.time()
    with b.locked("convert", "k"):
        waited = time.time() - started
        assert b.lookup("convert", "k") is None
        _commit(b, "convert", "k", b"by b")
    assert 1.5 < waited < 30, waited
    assert not fs.exists(f"{BUCKET}/leases/.leases/convert-k.json")  # released

    # a live node holds the lease and commits meanwhile: C waits, then finds the entry (no duplicate work)
    a, c = _node(tmp_path, "a2", url, lease_s=30), _node(tmp_path, "c", url, lease_s=30)
    holding = threading.Event()

    def node_a() -> None:
        with a.locked("convert", "k2"):
            holding.set()
            time.sleep(2)
            _commit(a, "convert", "k2", b"by a")

    thread = threading.Thread(target=node_a)
    thread.start()
    holding.wait(30)
    with c.locked("convert", "k2"):
        hit = c.lookup("convert", "k2")
    thread.join()
    assert hit is not None and hit.path("model").read_bytes() == b"by a"
    assert c.report() == {"local_hits": 0, "remote_hits": 1, "computed": 0, "shared_url": url}


def test_a_cli_run_on_another_node_recomputes_nothing(s3: dict[str, str], tmp_path: Path, tiny_keras: Path) -> None:
    """The same command on node B (its own working directory and local cache) takes every stage from the store;
    its outputs reach the shared outputs location too."""
    from tests.helpers.cli import cli

    url = f"s3://{BUCKET}/cli"
    outputs = f"s3://{BUCKET}/runs"
    args = [
        "model=keras",
        f"model.path={tiny_keras}",
        "dataset=random",
        "variants=[fp32,dynamic]",
        "benchmark.enabled=false",
        "tracking.enabled=false",
        f"runtime.cache_dir={url}",
        f"runtime.outputs_url={outputs}",
    ]
    reports = {}
    for node in ("a", "b"):
        cwd = tmp_path / node
        cwd.mkdir()
        proc = cli([*args, "hydra.run.dir=outputs/run"], cwd=cwd, env=s3)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        reports[node] = json.loads((cwd / "outputs/run/report.json").read_text())["cache"]
    assert reports["a"]["computed"] > 0 and reports["a"]["remote_hits"] == 0
    assert reports["b"] == {
        "local_hits": 0,
        "remote_hits": reports["a"]["computed"],
        "computed": 0,
        "shared_url": url,
    }
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert fs.exists(f"{BUCKET}/runs/outputs/run/report.json")
    assert fs.exists(f"{BUCKET}/runs/outputs/run/variants/fp32/model.tflite")


def test_an_unreachable_store_is_exit_2_before_any_work(s3: dict[str, str], tmp_path: Path) -> None:
    from tests.helpers.cli import cli

    proc = cli(
        ["tracking.enabled=false", "runtime.cache_dir=s3://no-such-bucket-here/x"], cwd=tmp_path, env=s3, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "runtime.cache_dir=s3://no-such-bucket-here/x" in proc.stderr and "Traceback" not in proc.stderr


def _node_pids(node: str) -> list[int]:
    """Every process of one Ray node: the raylet, its workers and what they started (a job's stage worker), found
    by the TFLITE_NODE that `ray start` ran with (both nodes share this machine, so nothing else tells them apart)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"TFLITE_NODE={node}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in pids if pid != os.getpid()]


def _tiny_model(path: Path, seed: int) -> Path:
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Dense(6, activation="relu")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(x)).save(path)
    return path


@pytest.mark.skipif(
    pytest.importorskip("importlib.util").find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="the Ray launcher is an extra: pip install -e '.[ray]'",
)
def test_a_ray_sweep_over_two_nodes_shares_the_cache_survives_a_killed_node_and_reaches_mlflow(
    s3: dict[str, str], tmp_path: Path, tiny_keras: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/sweeps.md "Running on a cluster", on this machine: two Ray nodes (one CPU each, so jobs run on both),
    each with its own local cache (TFLITE_NODE in its environment), the cache and MLflow's artifacts on the S3
    store, the sweep sent to the running cluster by `hydra.launcher.ray.init.address` (no `+`).
    1. Four jobs over two models: each model's stages are computed once, by its two jobs together.
    2. Node B is killed (kill -9, raylet and workers) while its job computes a stage: the check command reads
       every entry of the store, none is damaged and every entry of step 1 is still there.
    3. Node B back, both nodes' local caches gone: the sweep of step 1 again computes nothing, and the sweep's
       parent run lists every job with its report, through MLflow alone."""
    from pipelines.cache_check import check
    from tests.helpers.cli import cli

    port, mlflow_port = _free_port(), _free_port()
    marker = f"/tmp/rc{os.getpid()}"  # Ray's socket paths must stay short; this prefix marks our processes
    ray = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, **s3, "HOME": str(tmp_path), "RAY_DEDUP_LOGS": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
        # No job runner (as tests/helpers/mlflow_server.py): its eight consumer processes each import MLflow.
        env={**env, "MLFLOW_S3_ENDPOINT_URL": s3["AWS_ENDPOINT_URL"], "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=open(tmp_path / "mlflow.log", "wb"),  # noqa: SIM115 - the process owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    second_model = _tiny_model(tmp_path / "second.keras", seed=1)
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    node_b = [ray, "start", f"--address=127.0.0.1:{port}", *common, '--resources={"nodeB": 1}']
    try:
        import urllib.request

        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mlflow_port}/health", timeout=2).close()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, (tmp_path / "mlflow.log").read_text()[-2000:]
                time.sleep(0.5)
        subprocess.run(
            [ray, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={marker}",
             *common, '--resources={"nodeA": 1}'],
            check=True, capture_output=True, timeout=180, env={**env, "TFLITE_NODE": "a"},
        )  # fmt: skip
        subprocess.run(node_b, check=True, capture_output=True, timeout=180, env={**env, "TFLITE_NODE": "b"})
        url = f"s3://{BUCKET}/ray-cache"
        args = [
            "-m",
            "hydra/launcher=ray",
            f"hydra.launcher.ray.init.address=127.0.0.1:{port}",
            "model=keras",
            f"model.path={tiny_keras},{second_model}",
            "dataset=random",
            "variants=[fp32]",
            "benchmark.enabled=false",
            f"tracking.uri=http://127.0.0.1:{mlflow_port}",
            f"runtime.cache_dir={url}",
            f"runtime.local_cache_dir={tmp_path}/node-${{oc.env:TFLITE_NODE}}",
            "runtime.lease_s=15",  # the killed node's claims expire quickly (docs/sweeps.md: at most lease_s)
            "variants.fp32.gates.max_relative_rmse=0.001,0.002",  # two jobs per model sharing all but the verdict
        ]

        def sweep(name: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
            proc = cli([*args, *extra, f"hydra.sweep.dir={tmp_path / name}"], cwd=tmp_path, env=env, timeout=480)
            jobs = json.loads((tmp_path / name / "sweep_report.json").read_text())["jobs"]
            return proc, jobs

        # 1. four jobs over two models (steps 1 and 2 check the cache: only step 3's sweep is tracked, which keeps
        # eight tracking processes' MLflow imports off this 2-core machine)
        first, jobs = sweep("first", "tracking.enabled=false")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "object_store_memory" not in first.stderr
        assert sorted(p.name for p in (tmp_path / "first").iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
        caches = {j["num"]: json.loads(Path(j["run_dir"], "report.json").read_text())["cache"] for j in jobs}
        computed = {m: sorted(caches[n]["computed"] for n in (2 * m, 2 * m + 1)) for m in (0, 1)}
        print("first sweep, stages computed per model's two jobs:", computed)
        # Each stage once per model: the two jobs together compute exactly one job's stages (which job computes
        # which depends on timing: the one that starts second waits on the first's lease and then reuses it).
        stages = {m: sum(caches[2 * m][k] for k in ("computed", "local_hits", "remote_hits")) for m in (0, 1)}
        assert all(sum(computed[m]) == stages[m] > 0 for m in (0, 1)), (computed, stages)
        assert {p.name for p in tmp_path.glob("node-*")} == {"node-a", "node-b"}  # the jobs ran on both nodes
        finished = set(check(url)["ok"])

        # 2. node B killed while its job computes a stage (a new variant: new entries to compute)
        one_job_per_model = [
            *args[:-1], "variants=[dynamic]", "tracking.enabled=false", f"hydra.sweep.dir={tmp_path / 'killed'}"
        ]  # fmt: skip
        killer = subprocess.Popen(  # the sweep, in the background: both jobs compute, one on each node
            [sys.executable, "-m", "pipelines", *one_job_per_model],
            cwd=tmp_path, env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 300
        computing = lambda: [w for w in tmp_path.glob("node-b/*/.tmp-*") if "-fetch-" not in w.name]  # noqa: E731
        while not computing() and time.time() < deadline and killer.poll() is None:
            time.sleep(0.05)
        assert computing(), "node B never started computing a stage of the second sweep"
        for pid in _node_pids("b"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            killer.wait(timeout=300)  # Ray retries the lost job on node A, or the sweep fails: either is fine
        finally:
            _stop(killer)  # type: ignore[arg-type]
        after = check(url)
        assert after["damaged"] == [] and finished <= set(after["ok"]), after
        print(f"after the kill (sweep exit {killer.returncode}):", {k: len(v) for k, v in after.items()})

        # 3. node B back, both local caches gone: nothing is recomputed
        subprocess.run(node_b, check=True, capture_output=True, timeout=180, env={**env, "TFLITE_NODE": "b"})
        for node in ("a", "b"):
            subprocess.run(["rm", "-rf", str(tmp_path / f"node-{node}")], check=True)
        again, jobs = sweep("again")
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        caches_again = [json.loads(Path(j["run_dir"], "report.json").read_text())["cache"] for j in jobs]
        print("cache figures, sweep after the kill:", json.dumps(caches_again))
        assert sum(c["computed"] for c in caches_again) == 0 and all(c["remote_hits"] > 0 for c in caches_again)
        # through MLflow alone (as a main process on a third node sees them): every job, every report
        monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3["AWS_ENDPOINT_URL"])
        from pipelines.tracking.sweep_gather import gather_jobs

        parent = json.loads((tmp_path / "again" / "sweep_report.json").read_text())["mlflow_run_id"]
        gathered = gather_jobs(f"http://127.0.0.1:{mlflow_port}", parent, [])
        assert sorted(j["num"] for j in gathered) == [0, 1, 2, 3]
        assert all(j["report"]["cache"]["computed"] == 0 and j["exit_code"] == 0 for j in gathered)
    finally:
        stop_marked(marker)
        for pid in _node_pids("a") + _node_pids("b"):  # the worker node's daemons carry no marker
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-rf", marker], check=False)
        _stop(server)
    assert not pids_of(marker), "processes of this test's Ray nodes outlived it (their logs are under the marker)"
