"""The listeners' certificate: from PEM files (a mounted TLS Secret in the chart), rotated
without a restart, and otherwise a self-signed one for the configured invoke host names.

A real `turnpike local` process; certificates made with the `openssl` command line; clients
are Python's `ssl` with verification on. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import ssl
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("TURNPIKE_BIN", str(REPO / "target" / "debug" / "turnpike"))
HOST = "abc123.execute-api.local.turnpike.dev"


def make_cert(dir: pathlib.Path, name: str, sans: str) -> tuple[pathlib.Path, pathlib.Path]:
    crt, key = dir / f"{name}.crt", dir / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-keyout", str(key), "-out", str(crt), "-subj", f"/CN={name}", "-addext",
         f"subjectAltName={sans}"],
        check=True, capture_output=True,
    )
    return crt, key


def start(tmp: pathlib.Path, *args: str) -> tuple[subprocess.Popen, dict]:
    data = tmp / "data"
    log = open(tmp / "turnpike.log", "ab")
    proc = subprocess.Popen(
        [BIN, "local", "--data-dir", str(data), "--apiserver-addr", "127.0.0.1:0", "--public-addr", "127.0.0.1:0",
         "--private-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", *args],
        stdout=log, stderr=log,
    )
    end = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError((tmp / "turnpike.log").read_text())
        try:
            return proc, json.loads((data / "gateway.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        assert time.monotonic() < end, "no gateway.json"
        time.sleep(0.1)


def handshake(addr: str, cafile: pathlib.Path) -> bool:
    """Whether a verifying TLS handshake for HOST succeeds against `cafile`."""
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(cafile))
    try:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname=HOST):
                return True
    except ssl.SSLCertVerificationError:
        return False


def served_sans(addr: str) -> str:
    host, port = addr.rsplit(":", 1)
    pem = ssl.get_server_certificate((host, int(port)))
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                         capture_output=True, text=True, check=True)
    return out.stdout


@pytest.fixture
def stop():
    procs = []
    yield procs.append
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def test_certificate_files_are_served_and_rotate_without_a_restart(tmp_path, stop):
    old_crt, old_key = make_cert(tmp_path, "old", "DNS:*.execute-api.local.turnpike.dev")
    new_crt, new_key = make_cert(tmp_path, "new", "DNS:*.execute-api.local.turnpike.dev")
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(old_crt.read_bytes())
    key.write_bytes(old_key.read_bytes())
    proc, addrs = start(tmp_path, "--tls-cert-file", str(crt), "--tls-key-file", str(key),
                        "--tls-reload-interval-ms", "200")
    stop(proc)
    for listener in ("public", "private"):
        assert handshake(addrs[listener], old_crt), f"{listener} serves the configured certificate"
        assert not handshake(addrs[listener], new_crt)

    # A half-written pair (the new chain, the old key) is refused and the old one stays.
    crt.write_bytes(new_crt.read_bytes())
    time.sleep(0.6)
    assert handshake(addrs["public"], old_crt), "an unusable pair must not replace the served certificate"
    key.write_bytes(new_key.read_bytes())
    end = time.monotonic() + 10
    while not handshake(addrs["public"], new_crt):
        assert time.monotonic() < end, "the rotated certificate was not served within 10 s"
        time.sleep(0.1)
    assert not handshake(addrs["public"], old_crt)
    assert handshake(addrs["private"], new_crt)
    assert proc.poll() is None, "rotation needs no restart"


def test_without_files_a_self_signed_certificate_names_the_invoke_hosts(tmp_path, stop):
    proc, addrs = start(tmp_path, "--region", "eu-west-1", "--base-domain", "api.example.com")
    stop(proc)
    sans = served_sans(addrs["public"])
    assert "*.execute-api.eu-west-1.api.example.com" in sans and "localhost" in sans, sans


def test_a_certificate_without_its_key_is_a_usage_error(tmp_path):
    crt, _ = make_cert(tmp_path, "lone", "DNS:localhost")
    res = subprocess.run([BIN, "local", "--data-dir", str(tmp_path / "d"), "--tls-cert-file", str(crt)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "--tls-key-file" in res.stderr, res.stderr
