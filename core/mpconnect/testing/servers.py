"""The kit's local servers: the Datasets API server in a thread, and ``mpconnect serve
NAME`` in a subprocess (see :mod:`mpconnect.testing`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The project token and secret of :func:`local_datasets_server` unless given.
TEST_PROJECT_TOKEN = "test-project-token"
TEST_PROJECT_SECRET = "test-project-secret"


@contextmanager
def local_datasets_server(
    directory: Path,
    *,
    datasets: Sequence[str] = ("TEST",),
    project_token: str = TEST_PROJECT_TOKEN,
    project_secret: str = TEST_PROJECT_SECRET,
    **options: Any,
) -> Iterator[Any]:
    """Serve the Datasets API from a local store in ``directory``, on 127.0.0.1 (TLS).

    Yields the server (``.url``, ``.ca_path``, ``.store``); its :meth:`mixpanel` table
    points the ``datasets`` sink at it. Needs ``mpconnect[server]``.
    """
    try:
        from mpconnect.emulator.server import LocalDatasetsServer
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f'the local datasets server needs {exc.name}: pip install "mpconnect[server]"'
        ) from exc
    with LocalDatasetsServer(
        directory,
        datasets=list(datasets),
        project_token=project_token,
        project_secret=project_secret,
        **options,
    ) as server:
        yield server


def datasets_sink_settings(server: Any) -> dict[str, Any]:
    """The ``[mixpanel]`` table that points the ``datasets`` sink at a local server.

    Pass it with the server's store: ``run_source(..., mixpanel=table, store=server.store)``.
    """
    return {
        "sink": "datasets",
        "api_url": server.url,
        "project_token": server.project_token,
        "secret": server.project_secret,
        "ca_bundle": server.ca_path,
    }


@dataclass
class ServedInBackground:
    """A running ``mpconnect serve NAME`` and the settings it printed to paste.

    :param process: the ``mpconnect serve`` process.
    :param lines: what it printed on stdout, up to its ``press Ctrl-C to stop`` line.
    """

    process: Any
    lines: list[str]

    @property
    def toml(self) -> str:
        """The TOML it printed to paste into ``mpconnect.toml``."""
        start = self.lines.index("paste into mpconnect.toml:") + 1
        end = next(
            (
                i
                for i in range(start, len(self.lines))
                if self.lines[i].startswith("and set its secret")
            ),
            len(self.lines),
        )
        return "\n".join(self.lines[start:end]).strip().removesuffix("press Ctrl-C to stop")

    @property
    def environment(self) -> dict[str, str]:
        """The ``export NAME=value`` lines it printed, as a dict."""
        import shlex

        found = {}
        for line in self.lines:
            if line.startswith("export ") and "=" in line:
                name, _, value = line[len("export ") :].partition("=")
                words = shlex.split(value, comments=True)
                found[name] = words[0] if words else ""
        return found

    def stop(self) -> int:
        """Stop it with SIGTERM, as a supervisor would; return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return int(self.process.wait(timeout=30))
        except Exception:
            self.process.kill()
            return int(self.process.wait(timeout=30))


@contextmanager
def serve_in_background(
    name: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Iterator[ServedInBackground]:
    """Run ``mpconnect serve NAME ARGS`` in a subprocess until it has printed its settings.

    Yields a :class:`ServedInBackground` (``.toml``, ``.environment``, ``.lines``), and
    stops the server with SIGTERM afterwards. Pass ``--port 0`` to take a free port.

    :param env: the subprocess's environment (default: this process's).
    :param timeout: seconds to wait for the settings before failing.
    :raises RuntimeError: when the server exits, or prints nothing in time, with its output.
    """
    import queue
    import subprocess
    import sys
    import threading

    command = [sys.executable, "-c", "from mpconnect.cli import main; main()", "serve", name, *args]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    served = ServedInBackground(process, [])
    try:
        while not served.lines or served.lines[-1] != "press Ctrl-C to stop":
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                served.stop()
                error = process.stderr.read() if process.stderr else ""
                raise RuntimeError(
                    f"mpconnect serve {name} did not start; it printed "
                    f"{served.lines} and on stderr: {error[-2000:]}"
                )
            served.lines.append(line)
        yield served
    finally:
        served.stop()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
