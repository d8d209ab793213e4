"""Test helpers for looking at the MLflow UI: a throwaway ``mlflow server`` over a tracking
store, headless Chromium rendering a page to its DOM (and a screenshot), a small HTML tree to
read that DOM, and MLflow's own number formatting for metric cells."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from processes import free_port

CHROMIUM = "/usr/bin/chromium"

# Without these Chromium stalls on a machine with no outside network (component updates,
# sync, QUIC probes) or refuses to start as root.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)


def _stop_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Terminate a process started with ``start_new_session=True`` and everything it spawned
    (uvicorn workers, Chromium's renderer and GPU processes)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    # children may outlive the leader: sweep the whole group either way
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)


def _mlflow_executable() -> str:
    exe = Path(sys.executable).with_name("mlflow")
    return str(exe) if exe.exists() else "mlflow"


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, workdir: Path, *,
                  timeout_s: float = 90.0) -> Iterator[str]:
    """Run ``mlflow server`` on a free local port over ``backend_store_uri`` and yield its base
    URL once ``/health`` answers; the server and all its workers are killed on exit.

    ``workdir`` is the server's working directory (its default artifact root lands there)."""
    port = free_port()
    log_path = Path(workdir) / f"mlflow-server-{port}.log"
    env = dict(os.environ)
    # the background job runner (GenAI scorers, trace rollups) is not needed to browse runs and
    # would start a dozen extra consumer processes
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    cmd = [_mlflow_executable(), "server", "--backend-store-uri", backend_store_uri,
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n"
                                   + _tail(log_path))
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {timeout_s:.0f} s:\n"
                                   + _tail(log_path))
            time.sleep(0.25)
        yield url
    finally:
        _stop_group(proc)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def render(url: str, user_data_dir: Path, *, screenshot: Path | None = None,
           virtual_time_budget_ms: int = 15000, window_size: tuple[int, int] = (2400, 2000),
           timeout_s: float = 60.0) -> str:
    """The DOM of ``url`` as headless Chromium has rendered it, scripts and their requests
    included: virtual time runs ``virtual_time_budget_ms`` past the load and waits on pending
    fetches, so a single-page app has drawn its data by then. ``screenshot`` also writes a PNG
    of the window. Chromium and its helper processes are killed before this returns."""
    Path(user_data_dir).mkdir(parents=True, exist_ok=True)
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
           f"--window-size={window_size[0]},{window_size[1]}",
           f"--virtual-time-budget={virtual_time_budget_ms}"]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    cmd += ["--dump-dom", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"chromium did not finish rendering {url} in {timeout_s:.0f} s") from e
    finally:
        _stop_group(proc)
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"chromium exited with {proc.returncode} on {url}:\n"
                           + err.decode(errors="replace")[-3000:])
    return out.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- reading the rendered DOM

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        """This node and its descendants in document order, optionally only ``tag``."""
        if tag is None or self.tag == tag:
            yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter(tag)

    def elements(self) -> list[Node]:
        return [c for c in self.children if isinstance(c, Node)]

    @property
    def text(self) -> str:
        """Visible-ish text: descendants' text joined, whitespace collapsed (no script or
        style)."""
        parts: list[str] = []
        self._text(parts)
        return re.sub(r"\s+", " ", " ".join(parts)).strip()

    def _text(self, parts: list[str]) -> None:
        if self.tag in ("script", "style", "noscript"):
            return
        for c in self.children:
            if isinstance(c, str):
                parts.append(c)
            else:
                c._text(parts)

    def style_px(self, prop: str) -> float | None:
        """A pixel value from the inline ``style`` (``left``, ``top``, ``width`` ...)."""
        m = re.search(rf"(?:^|;)\s*{prop}\s*:\s*(-?[\d.]+)px", self.attrs.get("style", ""))
        return float(m.group(1)) if m else None

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs.get('class', '')!s}>"


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: (v or "") for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:  # unmatched end tags are ignored
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_html(html: str) -> Node:
    b = _TreeBuilder()
    b.feed(html)
    b.close()
    return b.root


# ---------------------------------------------------------------- MLflow's number display


def _js_number(x: float) -> str:
    """``String(x)`` in JavaScript for the values formatMetric produces."""
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    return repr(x)


def _js_round(x: float) -> float:
    return math.floor(x + 0.5)  # Math.round: halves go up


def format_metric(value: float) -> str:
    """How the MLflow UI writes a metric value in its tables (``Utils.formatMetric``)."""
    if value == 0:
        return "0"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if abs(value) < 1e-3:
        mantissa, exp = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exp):+d}"  # toExponential(3): 1.235e-4
    if abs(value) < 10:
        return _js_number(_js_round(value * 1000) / 1000)
    if abs(value) < 100:
        return _js_number(_js_round(value * 100) / 100)
    return _js_number(_js_round(value * 10) / 10)
