"""`fengqiao users …` and `fengqiao serve` from the shell, on both stores."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from engine.service import Fengqiao
from tests.support import seed

ROOT = Path(__file__).resolve().parents[2]


def env_for(store) -> dict[str, str]:
    return {**os.environ, "FENGQIAO_DATABASE_URL": store.url, "FENGQIAO_LOG_FORMAT": "json"}


def cli(store, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env_for(store),
        timeout=120,
    )
    assert (done.returncode == 0) == ok, (done.returncode, done.stdout, done.stderr)
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_users_and_serve(store):
    seed(Fengqiao(store)).close()
    token = cli(
        store,
        "users",
        "add",
        "--name",
        "wang",
        "--role",
        "reporter",
        "--region",
        "410928-001-007-03",
    ).stdout
    assert (
        token.startswith("fq_") and token.count("\n") == 1 and len(token.strip()) > 40
    )  # the token, alone
    token = token.strip()
    listed = cli(store, "users", "list").stdout
    assert [(u["name"], u["role"], u["revoked_at"]) for u in json.loads(listed)] == [
        ("wang", "reporter", None)
    ]
    assert token not in listed

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-workers"],
        cwd=ROOT,
        env={**env_for(store), "FENGQIAO_AUTH_FAILURES_ALLOWED": "3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{base}/v1/cases",
            headers=headers,
            json={
                "kind": "dispute",
                "category": "neighbours",
                "severity": "minor",
                "region": "410928-001-007-03",
                "title": "楼上噪音",
            },
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"]
        assert (
            httpx.get(f"{base}{created.headers['location']}", headers=headers).json()["title"]
            == "楼上噪音"
        )
        cli(store, "users", "revoke", "wang")
        statuses = [httpx.get(f"{base}/v1/regions", headers=headers).status_code for _ in range(4)]
        assert statuses == [
            401,
            401,
            401,
            429,
        ]  # FENGQIAO_AUTH_FAILURES_ALLOWED=3, read at start-up
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_refuses_a_setting_that_is_not_a_number(store):
    env = {**env_for(store), "FENGQIAO_REQUEST_DEADLINE_SECONDS": "half a minute"}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "FENGQIAO_REQUEST_DEADLINE_SECONDS='half a minute' is not float" in done.stderr
