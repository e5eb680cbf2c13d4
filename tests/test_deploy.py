"""The deployment files: docker-compose.yml is valid (no engine runs here, so `docker-compose
config` checks it), and deploy/nginx.conf, as the compose nginx runs it, passes `nginx -t`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_valid() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (Debian: docker-compose; .ci/run installs it)")
    result = subprocess.run(  # noqa: S603
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={**os.environ, "SECRET_KEY": "s" * 48},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = result.stdout
    for name in ("db:", "redis:", "migrate:", "app1:", "app2:", "worker:", "nginx:"):
        assert f"\n  {name}" in services, name
    assert "chatbot worker" in services or "- worker" in services


def test_compose_refuses_to_start_without_a_secret() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed")
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(  # noqa: S603
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: nginx; .ci/run installs it)")
    # The compose hostnames resolve only inside the compose network.
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = conf.replace("server app1:8000;", "server 127.0.0.1:18001;")
    conf = conf.replace("server app2:8000;", "server 127.0.0.1:18002;")
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(  # noqa: S603
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/logs/error.log;",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
