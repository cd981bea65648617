"""Shared helpers of the benchmark scripts: free ports, child processes with peak RSS."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def run_measured(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float, int, str]:
    """Run a command; return (seconds, peak RSS in MB, exit status, output)."""
    seconds, rss, _, status, output = run_measured_cpu(args, env, cwd)
    return seconds, rss, status, output


#: Runs a command as a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so that
#: processes it leaves behind (a forkserver and the worker processes it forks) are
#: reparented to the wrapper and reaped by it: their CPU and memory then count in its
#: children's resource usage, which it prints as its last line.
_REAPER = """
import ctypes, os, subprocess, sys, resource
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
status = subprocess.call(sys.argv[1:])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"\\nREAPER {status} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
"""


def run_measured_cpu(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float, float, int, str]:
    """Run a command; return (seconds, peak RSS in MB of its largest process, CPU seconds
    (user + system of every process it started, however deep), exit status, output)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _REAPER, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    output, _, last = proc.stdout.decode().rpartition("\nREAPER ")
    status, cpu, rss = last.split()
    return seconds, int(rss) / 1024, float(cpu), int(status), output


VERSION = (
    '{"created_at": "2026-01-01T00:00:00.000000Z", "is_live": %s, "state": {'
    '"readable": %s, "readable_at": "0001-01-01T00:00:00Z", "ready": %s, '
    '"ready_at": "0001-01-01T00:00:00Z", "writable": true}, "version_id": "1"}'
)
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  client_max_body_size 64m;
  client_body_buffer_size 16m;
  default_type application/json;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    keepalive_requests 1000000;
    location = /import {{ return 200 '{{"code": 200, "status": "OK"}}'; }}
    location = /engage {{ return 200 '{{"error": null, "status": 1}}'; }}
    location ~ ^/datasets/[^/]+/versions$ {{
      if ($request_method = POST) {{ return 200 '{{"data": {created}}}'; }}
      return 200 '{{"data": [{live}]}}';
    }}
    location ~ ^/datasets/[^/]+/versions/ {{ return 200 '{{"data": null}}'; }}
    location / {{ return 200 '{{"error": null, "status": 1}}'; }}
  }}
}}
"""


def null_server(directory: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start nginx answering both APIs at once; return (process, URL, CA file)."""
    import trustme

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install nginx")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    port = free_port()
    (directory / "nginx.conf").write_text(
        NGINX_CONF.format(
            dir=directory,
            port=port,
            cert=directory / "cert.pem",
            key=directory / "key.pem",
            created=VERSION % ("false", "false", "false"),
            live=VERSION % ("true", "true", "true"),
        )
    )
    process = subprocess.Popen([nginx, "-c", str(directory / "nginx.conf"), "-p", str(directory)])
    wait_for_port(port)
    return process, f"https://127.0.0.1:{port}", directory / "ca.pem"
