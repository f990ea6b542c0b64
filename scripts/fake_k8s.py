#!/usr/bin/env python3
"""kekring's fake of the Kubernetes API server's TokenReview endpoint, which Vault's and
OpenBao's Kubernetes auth method calls to check a pod's service-account token.

    python scripts/fake_k8s.py --port PORT [--host 127.0.0.1]

Needs `cryptography` (ES256 token signatures); scripts/servers.py runs it from the venv
of the project's fakes.

API (as Kubernetes documents it): `POST /apis/authentication.k8s.io/v1/tokenreviews` with
`Authorization: Bearer <token>` and a TokenReview object
`{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": T,
"audiences": [...]}}`; the answer is the TokenReview with its `status`, HTTP 201.

What it checks, like the API server:
- the caller: its bearer token must authenticate (401 Unauthorized otherwise) and belong
  to a service account allowed to create TokenReviews (the `system:auth-delegator`
  cluster role; 403 Forbidden otherwise);
- the reviewed token: its ES256 signature under this server's service-account signing
  key, the issuer, `exp` and `nbf` (60 s leeway), an audience among `spec.audiences` (the
  server's own audience, the issuer, when none is asked), and that its service account
  still exists with the uid the token names. A token that fails is `authenticated:
  false` with an error, not an HTTP error.
Tokens are JWTs shaped like the kubelet's projected service-account tokens (`sub`
system:serviceaccount:NS:NAME, a `kubernetes.io` claim with namespace, service account
name and uid).

Test-only control endpoints (scripts/fake_base.py has the server and the common ones):
    POST /fake-api/serviceaccount {"namespace": NS, "name": N, "reviewer": bool}
                                   create a service account (reviewer: may create
                                   TokenReviews); answers its uid
    POST /fake-api/token {"namespace": NS, "name": N, "audiences": [...], "ttl": S}
                                   a token for it, as `kubectl create token` makes
    POST /fake-api/delete {"namespace": NS, "name": N}
                                   delete the service account: its tokens stop working
"""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid

from fake_base import Answer, FakeService, Request, ServiceError, serve

ISSUER = "https://kubernetes.default.svc.cluster.local"
LEEWAY = 60
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Unauthenticated(Exception):
    pass


class K8s(FakeService):
    name = "fake-k8s"

    def __init__(self, args):
        super().__init__(args)
        from cryptography.hazmat.primitives.asymmetric import ec

        self.signing_key = ec.generate_private_key(ec.SECP256R1())
        self.accounts: dict[tuple[str, str], dict] = {}

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.accounts.clear()

    # -- tokens ------------------------------------------------------------------------

    def issue(self, namespace: str, name: str, audiences: list[str], ttl: int) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        with self.lock:
            account = self.accounts.get((namespace, name))
        if account is None:
            raise ValueError(f'serviceaccounts "{name}" not found in namespace {namespace}')
        now = int(time.time())
        claims = {
            "aud": audiences or [ISSUER],
            "exp": now + ttl,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": account["uid"]},
            },
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        header = {"alg": "ES256", "kid": "kekring-fake-k8s", "typ": "JWT"}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        der = self.signing_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def authenticate(self, token: str, audiences: list[str]) -> tuple[dict, dict, list[str]]:
        """(account, claims, audiences) of a valid token; raises Unauthenticated."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        parts = token.split(".")
        if len(parts) != 3:
            raise Unauthenticated("invalid bearer token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except ValueError:
            raise Unauthenticated("invalid bearer token")
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(sig) != 64:
            raise Unauthenticated("invalid bearer token, square/go-jose: error in cryptographic primitive")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            self.signing_key.public_key().verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Unauthenticated("invalid bearer token, square/go-jose: error in cryptographic primitive")
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            raise Unauthenticated("invalid bearer token, token issuer is not trusted")
        now = time.time()
        if not isinstance(claims.get("exp"), int) or now > claims["exp"] + LEEWAY:
            raise Unauthenticated("invalid bearer token, service account token has expired")
        if not isinstance(claims.get("nbf"), int) or now < claims["nbf"] - LEEWAY:
            raise Unauthenticated("invalid bearer token, service account token is not valid yet")
        wanted = audiences or [ISSUER]
        granted = [a for a in claims.get("aud", []) if a in wanted]
        if not granted:
            raise Unauthenticated("invalid bearer token, token audiences "
                                  f"{claims.get('aud')} is invalid for the target audiences {wanted}")
        k8s = claims.get("kubernetes.io") or {}
        sa = k8s.get("serviceaccount") or {}
        with self.lock:
            account = self.accounts.get((k8s.get("namespace"), sa.get("name")))
        if account is None or account["uid"] != sa.get("uid"):
            raise Unauthenticated(f'serviceaccounts "{sa.get("name")}" not found')
        return account, claims, granted

    # -- the API -----------------------------------------------------------------------

    def status_error(self, code: int, reason: str, message: str) -> ServiceError:
        return ServiceError(code, reason, message)

    def error_answer(self, e: ServiceError) -> Answer:
        return Answer(e.status, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": e.message, "reason": e.code, "code": e.status}, e.headers)

    def throttle_error(self) -> ServiceError:
        return ServiceError(429, "TooManyRequests", "the server has received too many requests",
                            {"Retry-After": "1"})

    def handle(self, req: Request) -> Answer:
        if req.path != REVIEW_PATH:
            raise self.status_error(404, "NotFound", "the server could not find the requested resource")
        if req.method != "POST":
            raise self.status_error(405, "MethodNotAllowed", f"{req.method} is not supported")
        self.last.op = "TokenReview"
        auth = req.header("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise self.status_error(401, "Unauthorized", "Unauthorized")
        try:
            caller, _, _ = self.authenticate(auth[len("Bearer "):].strip(), [])
        except Unauthenticated:
            raise self.status_error(401, "Unauthorized", "Unauthorized")
        if not caller["reviewer"]:
            raise self.status_error(
                403, "Forbidden",
                f'tokenreviews.authentication.k8s.io is forbidden: User "{caller["username"]}" cannot create '
                'resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope')
        body = req.json(lambda m: self.status_error(400, "BadRequest", m))
        # The kind and version may be left out (the path names them), not contradicted.
        if body.get("kind", "TokenReview") != "TokenReview" or body.get(
                "apiVersion", "authentication.k8s.io/v1") != "authentication.k8s.io/v1":
            raise self.status_error(400, "BadRequest", "expected an authentication.k8s.io/v1 TokenReview")
        spec = body.get("spec") or {}
        token, audiences = spec.get("token"), spec.get("audiences") or []
        if not isinstance(token, str) or not token:
            raise self.status_error(422, "Invalid", "TokenReview.authentication.k8s.io is invalid: spec.token: "
                                                    "Required value")
        self.inject(None)
        try:
            account, _, granted = self.authenticate(token, audiences)
            self.last.key = account["username"]
            status = {
                "authenticated": True,
                "user": {
                    "username": account["username"],
                    "uid": account["uid"],
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{account['namespace']}",
                               "system:authenticated"],
                },
                "audiences": granted,
            }
        except Unauthenticated as e:
            status = {"user": {}, "error": str(e)}
        return Answer(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                            "metadata": {"creationTimestamp": None},
                            "spec": {"token": token, "audiences": audiences}, "status": status})

    def control(self, name: str, req: dict) -> Answer | None:
        ns, sa = req.get("namespace"), req.get("name")
        if not isinstance(ns, str) or not isinstance(sa, str) or not ns or not sa:
            raise ValueError('expected {"namespace": NS, "name": N, ...}')
        if name == "serviceaccount":
            account = {"namespace": ns, "name": sa, "uid": str(uuid.uuid4()),
                       "username": f"system:serviceaccount:{ns}:{sa}", "reviewer": bool(req.get("reviewer"))}
            with self.lock:
                self.accounts[(ns, sa)] = account
            return Answer(200, {"uid": account["uid"]})
        if name == "token":
            audiences = req.get("audiences") or []
            ttl = req.get("ttl", 3600)
            if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
                raise ValueError("audiences: a list of strings")
            if not isinstance(ttl, int):
                raise ValueError("ttl: seconds")
            return Answer(200, {"token": self.issue(ns, sa, audiences, ttl)})
        if name == "delete":
            with self.lock:
                self.accounts.pop((ns, sa), None)
            return Answer(200, {})
        return None


if __name__ == "__main__":
    sys.exit(serve(K8s, __doc__))
