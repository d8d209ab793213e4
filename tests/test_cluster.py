"""cluster.yaml: checked against Ray's own schema, and brought up for real.

The real part is a `ray up` of a local-provider copy of cluster.yaml (same file mounts, same
start commands: Ray's head with token authentication and the MLflow server) over SSH to
127.0.0.1, served by Debian's sshd that the test starts on a free loopback port with its own
host key, authorized key and configuration; then `ray exec` runs the gmm25 smoke sweep against
that cluster with `--address auto`, the MLflow server is reached through an SSH tunnel, and
`ray down` stops it all.

How the test keeps to itself on a shared machine:
* Ray's SSH has no port option; `auth.ssh_proxy_command` (part of Ray's schema) connects to the
  test's port instead of 22, through a small relay run by this venv's Python.
* sshd gives its SSH sessions a HOME inside the test's directory (sshd_config SetEnv), so the
  synced project, ~/ray_bootstrap_*, the cluster token and ~/mlflow land there, not in /root.
  $HOME/venv links to this venv, and cluster.yaml's own setup line puts it first on PATH.
* Where `unshare` may make namespaces (root, or a privileged container), sshd runs as PID 1
  of its own PID namespace: `ray stop` (run by `ray up` and `ray down`, and which stops every
  Ray process it can see) sees only this cluster, and everything the SSH sessions started dies
  with sshd. Without namespaces the test skips, saying so: there `ray stop` would stop Ray
  processes the test did not start.
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from processes import free_port, namespaces_work, stop_process_group

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
VENV_BIN = os.path.dirname(sys.executable)
SSHD = "/usr/sbin/sshd"
# what `pip install -c constraints.txt -e` needs
PROJECT_ITEMS = ("pyproject.toml", "constraints.txt", "README.md", "sigdist", "studies")


def project_files(root: Path) -> set[str]:
    """The project's files under root, as cluster.yaml's file_mounts copy them (no bytecode)."""
    files = set()
    for item in PROJECT_ITEMS:
        paths = [root / item] if (root / item).is_file() else (root / item).rglob("*")
        files |= {str(p.relative_to(root)) for p in paths
                  if p.is_file() and "__pycache__" not in p.parts}
    return files


def load_cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def ray_validate(config: dict) -> dict:
    """What `ray up` does with a cluster file before it touches a cloud: fill in the provider's
    defaults, then validate against ray-schema.json (plus Ray's own consistency checks)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


# ---------------------------------------------------------------------------------------------
# The file itself


def test_cluster_yaml_passes_rays_schema():
    prepared = ray_validate(load_cluster())
    assert prepared["provider"]["type"] == "aws"
    head = prepared["available_node_types"][prepared["head_node_type"]]
    assert head["node_config"]["InstanceType"].startswith("m5.")
    assert head["resources"] == {"CPU": 0}
    workers = [t for name, t in prepared["available_node_types"].items()
               if name != prepared["head_node_type"]]
    assert [t["node_config"]["InstanceType"] for t in workers] == ["g5.xlarge"]
    assert workers[0]["min_workers"] == 0 and workers[0]["max_workers"] >= 1


@pytest.mark.parametrize("breakage", [
    "misspelled top-level key", "wrong type", "unknown auth key", "no provider type",
])
def test_a_broken_cluster_yaml_is_rejected(breakage):
    import jsonschema

    broken = load_cluster()
    if breakage == "misspelled top-level key":
        broken["max_worker"] = broken.pop("max_workers")
    elif breakage == "wrong type":
        broken["available_node_types"]["gpu"]["min_workers"] = "zero"
    elif breakage == "unknown auth key":
        broken["auth"]["ssh_usr"] = broken["auth"].pop("ssh_user")
    else:
        del broken["provider"]["type"]
        # The schema alone (prepare_config needs the provider type to pick its defaults).
        schema = json.loads((Path(__import__("ray.autoscaler").autoscaler.__file__).parent
                             / "ray-schema.json").read_text())
        with pytest.raises(jsonschema.ValidationError, match="'type' is a required property"):
            jsonschema.validate(broken, schema)
        return
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(broken)


def test_cluster_yaml_keeps_token_auth_on_and_mlflow_private():
    cluster = load_cluster()
    head_cmds = " ".join(cluster["head_start_ray_commands"])
    worker_cmds = " ".join(cluster["worker_start_ray_commands"])
    # Token auth explicit on both sides, the token shipped to every node, never disabled.
    assert "RAY_AUTH_MODE=token ray start --head" in head_cmds
    assert "RAY_AUTH_MODE=token ray start --address=" in worker_cmds
    assert cluster["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "RAY_AUTH_MODE=disabled" not in CLUSTER_YAML.read_text()
    assert "0.0.0.0" not in head_cmds + worker_cmds  # neither dashboard nor MLflow on all hosts
    # MLflow on the head: its private address, port 5000, SQLite and artifacts on its disk.
    server = next(c for c in cluster["head_start_ray_commands"] if "mlflow server" in c)
    assert '--host "$(cat ~/mlflow/host)" --port 5000' in server
    assert '--backend-store-uri "sqlite:///$HOME/mlflow/mlflow.db"' in server
    assert '--artifacts-destination "$HOME/mlflow/artifacts"' in server
    assert any("ray.util.get_node_ip_address()" in c and c.endswith("> ~/mlflow/host")
               for c in cluster["head_start_ray_commands"])
    # No extra inbound rules: Ray's group allows SSH and intra-cluster traffic only.
    assert "security_group" not in cluster["provider"]
    # The project is copied to and installed on every node.
    assert {k: v for k, v in cluster["file_mounts"].items() if k.startswith("~/sigdist/")} == {
        f"~/sigdist/{item}": item for item in PROJECT_ITEMS}
    assert any("pip install" in c and "-e ~/sigdist" in c for c in cluster["setup_commands"])


def test_constraints_pin_every_dependency_and_the_ray_the_cluster_runs():
    """constraints.txt pins one version of each dependency in pyproject.toml, inside its
    range, and the same Ray as cluster.yaml; every install command uses the file."""
    import tomllib
    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), (name, pins[name])
    (install,) = [c for c in load_cluster()["setup_commands"] if "-e ~/sigdist" in c]
    assert "-c ~/sigdist/constraints.txt" in install
    assert f'"ray[default,tune]=={pins["ray"]}"' in install
    for text in ((ROOT / ".ci" / "run").read_text(), (ROOT / "README.md").read_text()):
        assert re.findall(r"pip install[^&\n]*-e", text)
        assert all("-c constraints.txt" in c for c in re.findall(r"pip install[^&\n]*-e", text))


def test_cluster_yaml_installs_nothing_from_a_script_piped_into_a_shell():
    setup = load_cluster()["setup_commands"]
    assert not [c for c in setup if re.search(r"\b(curl|wget)\b|\|\s*(ba)?sh\b", c)]
    # uv comes from the package index at a pinned version, before its first use
    (first_uv,) = [i for i, c in enumerate(setup) if "~/.local/bin/uv" in c][:1]
    assert re.search(r'python3 -m pip install .*"uv==\d+\.\d+\.\d+"', setup[first_uv])


# ---------------------------------------------------------------------------------------------
# A real `ray up` over SSH to 127.0.0.1

PROXY = """\
import os, select, socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
inputs = [0, sock]
while True:
    for ready in select.select(inputs, [], [])[0]:
        if ready == 0:
            data = os.read(0, 65536)
            if data:
                sock.sendall(data)
            else:
                sock.shutdown(socket.SHUT_WR)
                inputs.remove(0)
        else:
            data = sock.recv(65536)
            if not data:
                sys.exit(0)
            while data:
                data = data[os.write(1, data):]
"""


def processes_mentioning(marker: str) -> dict[int, str]:
    """Live processes (not zombies) whose command line contains marker."""
    found = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found[int(pid_dir.name)] = cmdline.strip()
    return found


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def local_variant(cluster: dict, *, name: str, key: Path, proxy_command: str, token: Path,
                  ports: dict[str, int]) -> dict:
    """cluster.yaml on the local provider: same file mounts and start commands; the node
    already has the project installed (this venv), so only the install lines are left out."""

    def head_command(cmd: str) -> str:
        if "get_node_ip_address" in cmd:  # the head's private address: here, loopback
            return "echo 127.0.0.1 > ~/mlflow/host"
        cmd = re.sub(r"\b5000\b", str(ports["mlflow"]), cmd)
        if "mlflow server" in cmd:  # one web worker, not four, on a 2-core machine
            cmd = cmd.replace(f"--port {ports['mlflow']}", f"--port {ports['mlflow']} --workers 1")
        if "ray start --head" in cmd:
            cmd = cmd.replace("--port=6379", f"--port={ports['gcs']}")
            cmd = cmd.replace("--object-manager-port=8076",
                              f"--object-manager-port={ports['object_manager']}")
            # Another Ray on this machine may hold the default ports.
            cmd += (f" --include-dashboard=false --dashboard-port={ports['dashboard']}"
                    f" --dashboard-agent-listen-port={ports['agent']}")
        return cmd

    mounts = dict(cluster["file_mounts"])
    mounts["~/.ray/auth_token"] = str(token)  # the test's token, not the user's
    return {
        "cluster_name": name,
        "provider": {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []},
        "auth": {"ssh_user": "root", "ssh_private_key": str(key),
                 "ssh_proxy_command": proxy_command},
        "file_mounts": mounts,
        "rsync_exclude": cluster["rsync_exclude"],
        "rsync_filter": cluster["rsync_filter"],
        "setup_commands": [c for c in cluster["setup_commands"]
                           if "uv" not in re.findall(r"[\w.-]+", c)],
        "head_start_ray_commands": [head_command(c) for c in cluster["head_start_ray_commands"]],
        "worker_start_ray_commands": [],
    }


@dataclass
class Sshd:
    """The test's sshd on a free loopback port: its own host key, authorized key and HOME."""

    base: Path  # short: Ray's socket paths must stay under 107 characters
    home: Path
    key: Path
    token: Path
    port: int
    proxy_command: str
    ports: list[int] = field(default_factory=list)  # to be closed once it stops


@dataclass
class LocalCluster:
    """A `ray up` of the local-provider copy of cluster.yaml, served by :class:`Sshd`."""

    config_path: Path
    ports: dict[str, int]
    ray: Callable[..., subprocess.CompletedProcess]
    synced_before: set[str]  # the project's files before `ray up` copied them
    downed: bool = False


SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowUsers root
MaxStartups 100
MaxSessions 100
SetEnv HOME={home} RAY_TMPDIR={base} RAY_USAGE_STATS_ENABLED=0 \
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
"""


@pytest.fixture
def sshd(tmp_path):
    """sshd for `ray up` over SSH to 127.0.0.1. On teardown, every process the test started
    (each named by the test's directory) is gone, and so are its listening ports."""
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} is absent (Debian package openssh-server)")
    if not namespaces_work():  # `ray stop` would act machine-wide, on others' Ray too
        pytest.skip("unshare cannot make a PID namespace here, and without one the `ray stop` "
                    "of `ray up` / `ray down` would stop Ray processes this test did not start")
    for tool in ("ssh", "ssh-keygen", "rsync"):
        assert shutil.which(tool), f"`ray up` needs {tool} (Debian packages openssh-client, rsync)"
    base = Path(tempfile.mkdtemp(prefix="rayup-", dir="/tmp"))
    home, sshd_dir = base / "home", base / "sshd"
    for d in (home, sshd_dir, base / "results"):
        d.mkdir()
    (home / ".bashrc").write_text("")
    (home / "venv").symlink_to(os.path.dirname(VENV_BIN))
    key = sshd_dir / "id_ed25519"
    for path in (key, sshd_dir / "host_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True)
    (sshd_dir / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    token = sshd_dir / "auth_token"
    token.write_text(os.urandom(32).hex())
    (sshd_dir / "proxy.py").write_text(PROXY)
    port = free_port()
    (sshd_dir / "sshd_config").write_text(SSHD_CONFIG.format(port=port, dir=sshd_dir,
                                                             home=home, base=base))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    server = Sshd(base=base, home=home, key=key, token=token, port=port,
                  proxy_command=f"{sys.executable} {sshd_dir / 'proxy.py'} %h {port}")
    # in a PID namespace of its own (the fixture skips where none can be made)
    command = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
               SSHD, "-D", "-e", "-f", str(sshd_dir / "sshd_config")]
    log = open(tmp_path / "sshd.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        def listening():
            assert process.poll() is None, (tmp_path / "sshd.log").read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, 30, "sshd")
        yield server
    finally:
        stop_process_group(process)
        log.close()
        left = _stop_leftovers(server)
        shutil.rmtree(base, ignore_errors=True)
    assert not left, f"left behind: {left}"
    for open_port in (port, *server.ports):  # sshd's, Ray's GCS and the MLflow server's
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", open_port)) != 0, open_port


def _stop_leftovers(server: Sshd) -> dict[int, str]:
    """In its PID namespace, everything the SSH sessions started ended with sshd (and the SSH
    connection `ray` keeps open for a few seconds ends with it); any process still named by
    the test's directory is stopped. Returns what was still running."""
    deadline = time.monotonic() + 30
    while processes_mentioning(str(server.base)) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = processes_mentioning(str(server.base))
    for pid in left:  # the test's own processes, every one named by its directory
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


@pytest.fixture
def local_cluster(sshd: Sshd, tmp_path):
    """`ray up` of cluster.yaml's local copy (token auth, the head's MLflow server), with the
    project synced by its file_mounts; `ray down` on teardown, whatever happened."""
    ports = {name: free_port()
             for name in ("gcs", "object_manager", "dashboard", "agent", "mlflow")}
    sshd.ports += [ports["gcs"], ports["mlflow"]]
    name = f"sigdist-local-{sshd.base.name[len('rayup-'):].lower()}"
    config = local_variant(load_cluster(), name=name, key=sshd.key, token=sshd.token,
                           proxy_command=sshd.proxy_command, ports=ports)
    config_path = tmp_path / "cluster-local.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    ray_validate(config)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": str(sshd.base),
           "TMPDIR": str(sshd.base), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)

    def ray(*args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
        done = subprocess.run([os.path.join(VENV_BIN, "ray"), *args], cwd=ROOT,
                              env={**env, **extra_env}, capture_output=True, text=True,
                              timeout=timeout)
        with open(tmp_path / f"ray-{args[0]}.log", "a") as log:  # kept for a failure's story
            log.write(f"$ ray {' '.join(args)}\n{done.stdout}\n{done.stderr}\n")
        return done

    cluster = LocalCluster(config_path=config_path, ports=ports, ray=ray,
                           synced_before=project_files(ROOT))
    try:
        up = ray("up", "-y", "--no-config-cache", str(config_path))
        assert up.returncode == 0, f"ray up failed:\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}"
        yield cluster
    finally:
        if not cluster.downed:
            try:
                ray("down", "-y", str(config_path), timeout=120)
            except subprocess.TimeoutExpired:
                pass
        control_dir = Path(f"/tmp/ray_ssh_{_sha(getpass.getuser())}")
        shutil.rmtree(control_dir / _sha(name), ignore_errors=True)
        if control_dir.is_dir() and not any(control_dir.iterdir()):
            control_dir.rmdir()


@pytest.fixture
def head_mlflow(sshd: Sshd, local_cluster: LocalCluster):
    """The head's MLflow server as the UI reaches it, through an SSH tunnel: its URL, once it
    answers (it takes tens of seconds to create its database on a busy 2-core machine)."""
    port = free_port()
    tunnel = subprocess.Popen(
        ["ssh", "-N", "-i", str(sshd.key), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes",
         "-o", f"ProxyCommand={sshd.proxy_command}",
         "-L", f"{port}:127.0.0.1:{local_cluster.ports['mlflow']}", "root@127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                return response.read().decode().strip() == "OK"
        except OSError:
            return False
    try:
        wait_for(up, 150, "the MLflow server on the head, through the SSH tunnel")
        yield url
    finally:
        stop_process_group(tunnel)


def mlflow_api(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read().decode() or "{}")


@pytest.mark.slow
def test_ray_up_of_a_local_copy_runs_the_smoke_sweep(sshd, local_cluster, head_mlflow):
    ray, ports = local_cluster.ray, local_cluster.ports
    # file_mounts copied the whole project, and nothing else (others may edit the tree
    # meanwhile: a file made or removed during `ray up` may go either way).
    before, after = local_cluster.synced_before, project_files(ROOT)
    copied = project_files(sshd.home / "sigdist")
    assert before & after <= copied <= before | after
    assert "sigdist/data/__init__.py" in copied and "studies/gmm25_sweep.py" in copied
    assert not list((sshd.home / "sigdist").rglob("__pycache__"))

    # Token authentication is on: a client with the wrong token is refused.
    wrong = ray("status", "--address", f"127.0.0.1:{ports['gcs']}", timeout=120,
                RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    assert wrong.returncode != 0
    assert "InvalidAuthToken" in wrong.stdout + wrong.stderr, wrong.stderr[-3000:]
    assert (sshd.home / "mlflow" / "tracking_uri").read_text().strip() == \
        f"http://127.0.0.1:{ports['mlflow']}"

    # The sweep as docs/cluster.md runs it: from the synced project, on the cluster
    # (--address auto), tracked by the head's MLflow server. Two trials, one round.
    trials, results = 2, sshd.base / "results"
    sweep = (f"cd ~/sigdist && {sys.executable} studies/gmm25_sweep.py --smoke-test"
             f" --num-samples {trials} --name cluster_smoke --address auto"
             f" --storage-path {results} --tracking-uri \"$(cat ~/mlflow/tracking_uri)\"")
    run = ray("exec", "--no-config-cache", str(local_cluster.config_path), sweep, timeout=400)
    output = (run.stdout + run.stderr).replace("\r\n", "\n")  # ssh -tt: a terminal's lines
    assert run.returncode == 0, f"the sweep failed:\n{output[-6000:]}"
    # It joined the cluster that `ray up` started, and its trials ran and reported there ...
    assert re.search(rf"Connecting to existing Ray cluster at address: \S+:{ports['gcs']}",
                     output), output[-6000:]
    table = output.split("best trials (lowest KL):\n")[1].split("\n\n")[0].splitlines()
    assert table[0].split()[:3] == ["method", "lam", "k"] and len(table) == 1 + trials
    trial_results = list(results.glob("cluster_smoke/*/result.json"))
    assert len(trial_results) == trials
    assert all(p.read_text().strip() for p in trial_results)
    # ... and were tracked by the head's MLflow server: one parent run and one per trial,
    # none left RUNNING, read through the tunnel as the UI reads them.
    experiment = mlflow_api(head_mlflow, "/api/2.0/mlflow/experiments/get-by-name"
                            "?experiment_name=gmm25_sweep_smoke")["experiment"]
    runs = mlflow_api(head_mlflow, "/api/2.0/mlflow/runs/search",
                      {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert len(runs) == 1 + trials
    assert all(r["info"]["status"] in ("FINISHED", "KILLED") for r in runs), runs

    down = ray("down", "-y", str(local_cluster.config_path), timeout=120)
    local_cluster.downed = True
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    # `ray down` ran `ray stop` on the head: no process of Ray's session is left.
    wait_for(lambda: not processes_mentioning(f"{sshd.base}/ray/"), 30,
             f"`ray down` to stop Ray: {processes_mentioning(f'{sshd.base}/ray/')}")


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:10]
