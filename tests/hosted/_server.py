"""A real OpenAI-compatible server for the hosted tests: ``transformers serve`` on SmolLM2.

The hosted providers (``openai-api/...``, ``vllm/...``, ``openai/...``) only meet real
HTTP here: status codes, retries, usage fields, concurrency. The server is transformers'
own FastAPI app serving the offline SmolLM2 weights (the safetensors directory that
``load_subject("smollm2")`` converts from the packaged GGUF), so nothing is downloaded.

Offline: the model is given as a local directory and ``HF_HUB_OFFLINE=1`` is set, so
transformers never asks the hub. The server is pinned to that model and rejects any
other ``model`` field in a request; the directory is reached through a symlink named
``SERVED_NAME`` in the server's working directory, so the model id clients send is that
short name (``openai-api/hosted/smollm2-135m-instruct``), not an absolute path.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SERVED_NAME = "smollm2-135m-instruct"
"""Model id the server answers to (a symlink to the converted SmolLM2 directory)."""
SERVICE = "hosted"
"""inspect ``openai-api`` service name: ``HOSTED_BASE_URL`` / ``HOSTED_API_KEY`` configure it."""
MODEL = f"openai-api/{SERVICE}/{SERVED_NAME}"
"""The inspect model name of the served SmolLM2."""
START_TIMEOUT = 240.0
"""Seconds to wait for readiness: importing torch and transformers dominates on a busy CPU."""
SERVING_EXTRA = 'pip install -e ".[serving]"'


def missing_serving_deps() -> list[str]:
    """Packages ``transformers serve`` and inspect's ``openai-api`` provider need that are absent."""
    return [m for m in ("fastapi", "uvicorn", "openai") if importlib.util.find_spec(m) is None]


def free_port() -> int:
    """A loopback port free right now (the OS picks it, so parallel runs do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smollm2_directory() -> Path:
    """The converted SmolLM2 safetensors directory, converting the packaged GGUF if needed."""
    from neuronbench.subjects.models import SMOLLM2_NAME, cache_root, load_subject

    path = cache_root() / SMOLLM2_NAME
    if not (path / "config.json").is_file():
        load_subject("smollm2")  # converts once (~15 s) and publishes the directory
    return path


@dataclass
class ServedModel:
    """One ``transformers serve`` process on a loopback port; restartable on the same port."""

    workdir: Path
    """Server working directory: holds the model symlink and the server log."""
    port: int = field(default_factory=free_port)
    """Loopback port the server listens on."""
    process: subprocess.Popen[bytes] | None = None
    """The running server, None when stopped."""
    starts: int = 0
    """Times the server was started (a restart counts)."""

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API (what ``HOSTED_BASE_URL`` is set to)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def start(self) -> None:
        """Start the server and block until ``/health`` answers (or fail with its log)."""
        link = self.workdir / SERVED_NAME
        if not link.exists():
            link.symlink_to(smollm2_directory(), target_is_directory=True)
        env = dict(
            os.environ,
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            OMP_NUM_THREADS="1",  # the test machine's cores are shared
            TOKENIZERS_PARALLELISM="false",
        )
        cmd = [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            SERVED_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--log-level",
            "info",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"transformers serve not ready after {START_TIMEOUT} s:\n{self.log_tail()}"
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, as a crashed or preempted server does."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    def stop(self) -> None:
        """Terminate gracefully (SIGTERM), killing it if it does not exit promptly."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return "(no server log)"
