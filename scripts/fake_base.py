"""What kekring's fakes of documented service APIs share (scripts/fake_kms.py,
scripts/fake_k8s.py, and the fakes of the services still to come): an HTTP/1.1 server
on one address, bounded request bodies, one log line per request, the test-only control
endpoints with their fault injection, and the state machine of a key.

A fake is a `FakeService` subclass:

    class Kms(FakeService):
        name = "fake-kms"
        def handle(self, req: Request) -> Answer: ...        # the service's API
        def error_answer(self, e: ServiceError) -> Answer: ... # its error format
        def throttle_error(self) -> ServiceError: ...          # what "throttle" answers

    if __name__ == "__main__":
        serve(Kms, __doc__)

Control endpoints (not authenticated, loopback only, paths under /fake-api/):
    GET  /fake-api/health                            readiness
    POST /fake-api/reset                             forget all state (`FakeService.reset`)
    POST /fake-api/<fault> {"count": N, "key": K}    the next N calls naming key K (every
                                                     call when K is left out) get <fault>
Faults every fake has: `throttle` (the service's throttling answer, raised by
`FakeService.inject`), `unavailable` (503), `oversize` (a 200 answer padded beyond the
1 MiB kekring accepts) and `misname` (the answer names another key; each fake applies it
where its answers name keys, through `take_fault`). A fake adds its own controls in
`control`.

With `--tls-ca-out PATH` a fake serves HTTPS: it makes a CA and a certificate for
127.0.0.1 signed by it (P-256, valid for a day; needs `cryptography`) and writes the CA
certificate to PATH for clients to trust.

Standard library only; Python 3.11.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import signal
import ssl
import tempfile
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Requests larger than this are refused (no documented key-service request comes near).
MAX_BODY = 1 << 20
# What `oversize` pads an answer to: past the 1 MiB a kekring backend reads.
OVERSIZE = (1 << 20) + 4096
FAULTS = ("throttle", "unavailable", "oversize", "misname")


class ServiceError(Exception):
    """An error answer: HTTP status, the service's error code, a message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def json(self, error) -> dict:
        """The body as a JSON object; `error(message)` makes the service's own refusal."""
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            raise error("the request body is not JSON")
        if not isinstance(value, dict):
            raise error("the request body is not a JSON object")
        return value


@dataclass
class Answer:
    status: int
    payload: object
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class StateError(Exception):
    """A key-state transition the key's state does not allow."""

    def __init__(self, state: str, wanted: str):
        super().__init__(f"a key in state {state} cannot be {wanted}")
        self.state = state
        self.wanted = wanted


class KeyLifecycle:
    """The state machine the key services share: enabled <-> disabled; a scheduled
    deletion (pending, no operation allowed) that can be cancelled until it is due;
    destroyed at the end. Each fake names the states as its service does and maps a
    `StateError` to its own refusal."""

    ENABLED, DISABLED, PENDING, DESTROYED = "enabled", "disabled", "pending", "destroyed"

    def __init__(self, cancel_to: str = DISABLED):
        self.state = self.ENABLED
        self.deletion_due: float | None = None
        self.pending_days: int | None = None
        self.cancel_to = cancel_to

    def usable(self) -> bool:
        return self.state == self.ENABLED

    def _require(self, wanted: str, *allowed: str) -> None:
        if self.state not in allowed:
            raise StateError(self.state, wanted)

    def enable(self) -> None:
        self._require("enabled", self.ENABLED, self.DISABLED)
        self.state = self.ENABLED

    def disable(self) -> None:
        self._require("disabled", self.ENABLED, self.DISABLED)
        self.state = self.DISABLED

    def schedule_deletion(self, days: int) -> float:
        self._require("scheduled for deletion", self.ENABLED, self.DISABLED)
        self.state = self.PENDING
        self.pending_days = days
        self.deletion_due = time.time() + days * 86400
        return self.deletion_due

    def cancel_deletion(self) -> None:
        self._require("restored", self.PENDING)
        self.state = self.cancel_to
        self.deletion_due = self.pending_days = None

    def destroy(self) -> None:
        """The scheduled deletion comes due (a control endpoint stands in for the wait)."""
        self._require("destroyed", self.PENDING)
        self.state = self.DESTROYED


class FakeService:
    """State and API of one fake. Subclasses implement `handle` and `error_answer`, and
    call `inject(key)` once a request names its key, so the fault controls reach it."""

    name = "fake"

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.lock = threading.RLock()
        self._faults: dict[tuple[str, str], int] = {}
        self.last = threading.local()  # the key the current thread's request named, for the log

    # -- to implement ------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Command-line options beyond --host and --port."""

    def handle(self, req: Request) -> Answer:
        raise ServiceError(404, "NotFound", f"{self.name} has no {req.method} {req.path}")

    def error_answer(self, e: ServiceError) -> Answer:
        return Answer(e.status, {"error": {"code": e.code, "message": e.message}}, e.headers)

    def throttle_error(self) -> ServiceError:
        return ServiceError(429, "TooManyRequests", "Rate exceeded", {"Retry-After": "0"})

    def unavailable_error(self) -> ServiceError:
        return ServiceError(503, "ServiceUnavailable", "The service is unavailable.")

    def key_scope(self, key: str) -> str | None:
        """The canonical id of the key a request or control names (None: unknown), so a
        fault set for one spelling of a key reaches every other spelling."""
        return key

    def control(self, name: str, req: dict) -> Answer | None:
        """A fake's own control endpoint /fake-api/<name>; None: there is none."""
        return None

    def reset(self) -> None:
        with self.lock:
            self._faults = {}

    def health(self) -> dict:
        return {"status": "ok"}

    # -- faults ------------------------------------------------------------------------

    def set_fault(self, fault: str, key: str | None, count: int) -> None:
        scope = "*" if key is None else self.key_scope(key)
        if scope is None:
            raise ValueError(f"no key {key}")
        with self.lock:
            self._faults[(fault, scope)] = count

    def take_fault(self, fault: str, key: str | None) -> bool:
        """Whether this call gets `fault`: counts set for its key come first, then counts
        set for every key."""
        scope = self.key_scope(key) if key else None
        with self.lock:
            for s in ([scope] if scope else []) + ["*"]:
                n = self._faults.get((fault, s), 0)
                if n > 0:
                    self._faults[(fault, s)] = n - 1
                    return True
        return False

    def inject(self, key: str | None) -> None:
        """The faults that replace an answer, for a call naming `key`."""
        if self.take_fault("throttle", key):
            raise self.throttle_error()
        if self.take_fault("unavailable", key):
            raise self.unavailable_error()
        self.last.oversize = self.take_fault("oversize", key)


def pad(answer: Answer) -> Answer:
    """`answer` made larger than a kekring backend reads, still valid JSON."""
    if isinstance(answer.payload, dict):
        answer.payload = dict(answer.payload, kekringPadding="x" * OVERSIZE)
    return answer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries a Content-Length
    sys_version = ""
    service: FakeService  # set on the class by serve()

    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK hold the body back ~40 ms per answer.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args) -> None:  # replaced by note()
        pass

    def note(self, what: str, outcome: str, started: float) -> None:
        key = getattr(self.service.last, "key", None)
        tail = key[-12:] if key else "-"
        sys.stderr.write(f"{self.service.name}: {what} key={tail} {outcome} "
                         f"{1000 * (time.monotonic() - started):.0f}ms\n")
        sys.stderr.flush()

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
                if len(body) > MAX_BODY:
                    raise ValueError("request body too large")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def send(self, a: Answer) -> None:
        body = b"" if a.payload is None else json.dumps(a.payload).encode()
        self.send_response(a.status)
        self.send_header("Content-Type", a.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", str(uuid.uuid4()))
        for k, v in a.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def dispatch(self) -> None:
        started = time.monotonic()
        self.service.last.key = None
        self.service.last.oversize = False
        path, _, query = self.path.partition("?")
        try:
            body = self.read_body()
        except ValueError as e:
            self.close_connection = True
            self.send(self.service.error_answer(ServiceError(413, "RequestTooLarge", str(e))))
            self.note(f"{self.command} {path}", "413", started)
            return
        if path.startswith("/fake-api/"):
            self.send(self.control(path[len("/fake-api/"):], body))
            self.note(f"{self.command} {path}", "control", started)
            return
        req = Request(self.command, path, query, list(self.headers.items()), body)
        try:
            answer = self.service.handle(req)
            if self.service.last.oversize:
                answer = pad(answer)
            outcome = str(answer.status)
        except ServiceError as e:
            answer = self.service.error_answer(e)
            outcome = e.code
        except Exception as e:  # a bug in the fake: answer as the service would, and say so
            answer = self.service.error_answer(
                ServiceError(500, "InternalError", f"{self.service.name} internal error: {type(e).__name__}"))
            outcome = f"InternalError ({type(e).__name__}: {e})"
        self.send(answer)
        self.note(getattr(self.service.last, "op", None) or f"{self.command} {path}", outcome, started)

    def control(self, name: str, body: bytes) -> Answer:
        if name == "health" and self.command == "GET":
            return Answer(200, self.service.health())
        if self.command != "POST":
            return Answer(405, {"message": "control endpoints take POST"})
        try:
            req = json.loads(body or b"{}")
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return Answer(400, {"message": "expected a JSON object"})
        if name == "reset":
            self.service.reset()
            return Answer(200, {})
        if name in FAULTS:
            count, key = req.get("count", 1), req.get("key")
            if not isinstance(count, int) or count < 0 or not (key is None or isinstance(key, str)):
                return Answer(400, {"message": 'expected {"count": N, "key": optional key}'})
            try:
                self.service.set_fault(name, key, count)
            except (ValueError, ServiceError) as e:
                return Answer(400, {"message": str(e)})
            return Answer(200, {"count": count})
        try:
            answer = self.service.control(name, req)
        except (ValueError, KeyError, TypeError) as e:
            return Answer(400, {"message": f"{name}: {e}"})
        return answer if answer is not None else Answer(404, {"message": f"no control {name}"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = dispatch


def tls_context(host: str, ca_out: str) -> ssl.SSLContext:
    """A server context for `host` under a new CA, whose certificate goes to `ca_out`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(valid[0]).not_valid_after(valid[1])
             .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False,
                                              key_agreement=False, key_cert_sign=True, crl_sign=True,
                                              encipher_only=False, decipher_only=False), critical=True)
        else:
            b = (b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                              x509.DNSName("localhost")]), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        return b.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("kekring test CA", ca_key, "kekring test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(host, key, "kekring test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    tmp = f"{ca_out}.tmp"
    with open(tmp, "wb") as f:
        f.write(ca.public_bytes(pem))
    os.replace(tmp, ca_out)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files: a private directory that lives only for the call.
    with tempfile.TemporaryDirectory() as d:
        chain, private = os.path.join(d, "chain.pem"), os.path.join(d, "key.pem")
        with open(chain, "wb") as f:
            f.write(leaf.public_bytes(pem) + ca.public_bytes(pem))
        with open(os.open(private, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        ctx.load_cert_chain(chain, private)
    return ctx


def serve(cls: type[FakeService], doc: str) -> int:
    """Parses --host/--port/--tls-ca-out (and the fake's own options), then serves until
    SIGTERM."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-ca-out", help="serve HTTPS; write the CA certificate here")
    cls.add_arguments(parser)
    args = parser.parse_args()
    Handler.service = cls(args)
    Handler.server_version = f"kekring-{cls.name}"
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    scheme = "http"
    if args.tls_ca_out:
        # The handshake runs in the request's thread, on its first read, not in accept().
        server.socket = tls_context(args.host, args.tls_ca_out).wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"

    def on_sigterm(signum, frame) -> None:
        raise KeyboardInterrupt  # SIGTERM ends the server like Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    sys.stderr.write(f"{cls.name}: listening on {scheme}://{args.host}:{args.port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
