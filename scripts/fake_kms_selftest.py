#!/usr/bin/env python3
"""Checks scripts/fake_kms.py with raw HTTP and a SigV4 signer of its own.

    V/bin/python scripts/fake_kms_selftest.py                  # starts a fake on a free port
    V/bin/python scripts/fake_kms_selftest.py --endpoint URL   # a fake that is already running

V is the fake's venv (it has kyber-py), e.g. the one `scripts/servers.py start` made; the
fake's log line for each request goes to stderr when this script starts the fake itself.
Exit 1 if any check fails.

What it checks: the signer against AWS's published SigV4 test vectors (and the fake's
verifier against the same vectors); kyber-py's FIPS 203 sizes and implicit rejection; then,
over one keep-alive connection, ML-KEM keys end to end (KMS and local encapsulation both
decapsulate to the same secret, a tampered ciphertext gives another secret and no error,
a wrong length is InvalidCiphertextException), the DER SubjectPublicKeyInfo, aliases and
ARNs, key states, the authentication errors and the fault controls.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import pathlib
import socket
import subprocess
import sys
import time
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
ACCESS_KEY = "AKIDKEKRINGTEST"
DENY_KEY = "AKIDKEKRINGDENY"
SECRET = "kekring-test-secret"
REGION = "us-east-1"
JSON11 = "application/x-amz-json-1.1"
# key spec -> (encapsulation key, ciphertext) sizes in bytes (FIPS 203)
SIZES = {"ML_KEM_512": (800, 768), "ML_KEM_768": (1184, 1088), "ML_KEM_1024": (1568, 1568)}
OIDS = {"ML_KEM_512": "2.16.840.1.101.3.4.4.1", "ML_KEM_768": "2.16.840.1.101.3.4.4.2",
        "ML_KEM_1024": "2.16.840.1.101.3.4.4.3"}

failures: list[str] = []
passed = 0


def check(what: str, ok: bool, detail: object = "") -> bool:
    global passed
    if ok:
        passed += 1
    else:
        failures.append(f"{what}: {detail}")
        print(f"FAIL {what}: {detail}", file=sys.stderr)
    return ok


# ---------------------------------------------------------------------------------------
# SigV4 signing (the client side; written apart from the fake's verifier)


def _enc(s: str, slash: bool = False) -> str:
    return urllib.parse.quote(s, safe="-_.~/" if slash else "-_.~")


def sigv4_headers(method: str, host: str, path: str, query: str, headers: dict[str, str], body: bytes,
                  access_key: str, secret: str, region: str, service: str, amz_date: str,
                  token: str | None = None) -> dict[str, str]:
    """Returns `headers` plus X-Amz-Date, the token if any, and Authorization."""
    out = dict(headers)
    out["X-Amz-Date"] = amz_date
    if token is not None:
        out["X-Amz-Security-Token"] = token
    canon = {k.lower(): " ".join(v.split()) for k, v in out.items()}
    canon["host"] = host
    names = sorted(canon)
    params = sorted((_enc(urllib.parse.unquote(k)), _enc(urllib.parse.unquote(v)))
                    for k, _, v in (p.partition("=") for p in query.split("&") if p))
    canonical = "\n".join([
        method,
        _enc(path, slash=True),
        "&".join(f"{k}={v}" for k, v in params),
        "".join(f"{n}:{canon[n]}\n" for n in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return out


# From AWS's SigV4 test suite (aws-sigv4 crate, aws-signing-test-suite/v4): request line,
# extra headers, body, expected signature. Credentials AKIDEXAMPLE, 20150830T123600Z,
# us-east-1, service "service".
VECTORS = [
    ("get-vanilla", "GET", "/", "", {}, b"",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-encoded", "GET", "/", "Param-3=Value3&Param=Value2&%E1%88%B4=Value1", {}, b"",
     "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"),
    ("get-header-value-trim", "GET", "/", "", {"My-Header1": " value1", "My-Header2": '"a   b   c"'}, b"",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ("post-x-www-form-urlencoded", "POST", "/", "",
     {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "13",
      "x-amz-content-sha256": "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"},
     b"Param1=value1", "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"),
]


def check_vectors(fake) -> None:
    for name, method, path, query, headers, body, want in VECTORS:
        signed = sigv4_headers(method, "example.amazonaws.com", path, query, headers, body, "AKIDEXAMPLE",
                               "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service",
                               "20150830T123600Z")
        got = signed["Authorization"].rsplit("Signature=", 1)[1]
        check(f"signer vector {name}", got == want, got)
        # The fake's verifier, from its parts, on the same request.
        hdrs = [("Host", "example.amazonaws.com")] + [(k, v) for k, v in signed.items() if k != "Authorization"]
        names = sorted({k.lower() for k, _ in hdrs})
        canonical = fake.canonical_request(method, path, query, hdrs, names, hashlib.sha256(body).hexdigest())
        to_sign = fake.string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", canonical)
        key = fake.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service")
        got = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        check(f"verifier vector {name}", got == want, got)
    # Paths: normalized, then encoded once more (double-encode-path, get-slashes-normalized,
    # get-relative-relative-normalized).
    for raw, want in [("/test/@connections/JBDvjfGEIAMCERw%3D", "/test/%40connections/JBDvjfGEIAMCERw%253D"),
                      ("//example//", "/example/"), ("/example1/example2/../..", "/")]:
        got = fake.canonical_request("GET", raw, "", [], [], "").split("\n")[1]
        check(f"verifier canonical path {raw}", got == want, got)


# ---------------------------------------------------------------------------------------
# kyber-py


def check_kyber() -> None:
    import kyber_py.ml_kem as mlkem

    for spec, (ek_len, ct_len) in SIZES.items():
        kem = getattr(mlkem, spec)
        ek, dk = kem.keygen()
        secret, ct = kem.encaps(ek)
        check(f"kyber-py {spec} sizes", (len(ek), len(ct), len(secret)) == (ek_len, ct_len, 32),
              (len(ek), len(ct), len(secret)))
        check(f"kyber-py {spec} round trip", kem.decaps(dk, ct) == secret)
        bad = bytes([ct[0] ^ 1]) + ct[1:]
        try:
            rejected = kem.decaps(dk, bad)
            check(f"kyber-py {spec} implicit rejection", rejected != secret and len(rejected) == 32
                  and kem.decaps(dk, bad) == rejected)
        except ValueError as e:
            check(f"kyber-py {spec} implicit rejection", False, f"raised {e}")


# ---------------------------------------------------------------------------------------
# DER


def der_read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """One TLV at pos: (tag, content, end)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, data[pos:pos + length], pos + length


def oid_text(content: bytes) -> str:
    arcs = [content[0] // 40, content[0] % 40]
    value = 0
    for b in content[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def parse_spki(der: bytes) -> tuple[str, bytes]:
    """(algorithm OID, encapsulation key); fails a check on anything but RFC 9935's shape."""
    tag, spki, end = der_read(der)
    check("SPKI is one SEQUENCE", tag == 0x30 and end == len(der))
    tag, alg, pos = der_read(spki)
    check("SPKI AlgorithmIdentifier is a SEQUENCE", tag == 0x30)
    tag, oid, alg_end = der_read(alg)
    check("AlgorithmIdentifier has an OID and no parameters", tag == 0x06 and alg_end == len(alg))
    tag, bits, end = der_read(spki, pos)
    check("SPKI subjectPublicKey is a BIT STRING with no unused bits", tag == 0x03 and bits[0] == 0
          and end == len(spki))
    return oid_text(oid), bits[1:]


# ---------------------------------------------------------------------------------------
# The client


class Fake:
    def __init__(self, endpoint: str):
        u = urllib.parse.urlsplit(endpoint)
        self.host = u.netloc
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def raw(self, method: str, path: str, body: bytes, headers: dict[str, str]):
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), (json.loads(data) if data else {})

    def call(self, op: str, req: dict, *, access_key: str = ACCESS_KEY, secret: str = SECRET,
             region: str = REGION, service: str = "kms", token: str | None = None,
             when: datetime.datetime | None = None, tamper_body: bool = False):
        body = json.dumps(req).encode()
        when = when or datetime.datetime.now(datetime.timezone.utc)
        headers = sigv4_headers("POST", self.host, "/", "", {
            "Content-Type": JSON11, "X-Amz-Target": f"TrentService.{op}", "Content-Length": str(len(body)),
        }, body, access_key, secret, region, service, f"{when:%Y%m%dT%H%M%SZ}", token)
        if tamper_body:
            body = body.replace(b"}", b" }")
            headers["Content-Length"] = str(len(body))
        return self.raw("POST", "/", body, headers)

    def ok(self, what: str, op: str, req: dict, **kw) -> dict:
        status, _, out = self.call(op, req, **kw)
        check(what, status == 200, f"HTTP {status} {brief(out)}")
        return out if status == 200 else {}

    def error(self, what: str, op: str, req: dict, name: str, **kw) -> None:
        status, headers, out = self.call(op, req, **kw)
        check(what, status == 400 and out.get("__type") == name and isinstance(out.get("message"), str)
              and headers.get("x-amzn-ErrorType") == name and headers.get("Content-Type") == JSON11,
              f"wanted {name}, got HTTP {status} {brief(out)}")


def brief(out: dict) -> dict:
    """An answer for a failure message: blobs as their length, never a secret's value."""
    return {k: (f"<{len(v)} base64 chars>" if k in ("SharedSecret", "SharedSecretCiphertextBlob", "PublicKey")
                else v) for k, v in out.items()}


def b64d(s: str) -> bytes:
    return base64.b64decode(s)


def b64e(b: bytes) -> str:
    return base64.b64encode(b).decode()


def check_service(endpoint: str) -> None:
    import kyber_py.ml_kem as mlkem

    kms = Fake(endpoint)
    status, _, out = kms.raw("GET", "/fake-api/health", b"", {})
    check("health", status == 200 and out.get("status") == "ok", out)
    kms.raw("POST", "/fake-api/reset", b"{}", {"Content-Type": "application/json"})
    sock = kms.conn.sock

    # -- a key, its names and its public key ------------------------------------------
    meta = kms.ok("CreateKey ML_KEM_768", "CreateKey",
                  {"KeySpec": "ML_KEM_768", "KeyUsage": "ENCAPSULATE_DECAPSULATE", "Description": "selftest"})
    meta = meta.get("KeyMetadata", {})
    key_id, arn = meta.get("KeyId", ""), meta.get("Arn", "")
    check("KeyMetadata", arn == f"arn:aws:kms:{REGION}:111122223333:key/{key_id}"
          and meta.get("KeySpec") == "ML_KEM_768" and meta.get("KeyUsage") == "ENCAPSULATE_DECAPSULATE"
          and meta.get("KeyState") == "Enabled" and meta.get("Enabled") is True
          and meta.get("EncapsulationAlgorithms") == ["ML_KEM"]
          and isinstance(meta.get("CreationDate"), (int, float)), meta)
    kms.ok("CreateAlias", "CreateAlias", {"AliasName": "alias/kekring-selftest", "TargetKeyId": key_id})
    kms.error("CreateAlias twice", "CreateAlias", {"AliasName": "alias/kekring-selftest", "TargetKeyId": key_id},
              "AlreadyExistsException")
    alias_arn = f"arn:aws:kms:{REGION}:111122223333:alias/kekring-selftest"
    for name in (key_id, arn, "alias/kekring-selftest", alias_arn):
        out = kms.ok(f"DescribeKey by {name}", "DescribeKey", {"KeyId": name})
        check(f"DescribeKey by {name} finds the key", out.get("KeyMetadata", {}).get("Arn") == arn, out)
    out = kms.ok("ListAliases", "ListAliases", {"KeyId": key_id})
    check("ListAliases names the alias", [a["AliasName"] for a in out.get("Aliases", [])]
          == ["alias/kekring-selftest"], out)

    pub = kms.ok("GetPublicKey", "GetPublicKey", {"KeyId": "alias/kekring-selftest"})
    check("GetPublicKey members", pub.get("KeyId") == arn and pub.get("KeySpec") == "ML_KEM_768"
          and pub.get("KeyUsage") == "ENCAPSULATE_DECAPSULATE" and pub.get("EncapsulationAlgorithms") == ["ML_KEM"],
          {k: v for k, v in pub.items() if k != "PublicKey"})
    oid, ek = parse_spki(b64d(pub.get("PublicKey", "")))
    check("SPKI OID is id-alg-ml-kem-768", oid == OIDS["ML_KEM_768"], oid)
    check("SPKI key is 1184 bytes", len(ek) == 1184, len(ek))

    # -- encapsulation ---------------------------------------------------------------
    enc = kms.ok("Encapsulate", "Encapsulate", {"KeyId": alias_arn, "EncapsulationAlgorithm": "ML_KEM"})
    secret, ct = b64d(enc.get("SharedSecret", "")), b64d(enc.get("SharedSecretCiphertextBlob", ""))
    check("Encapsulate members", enc.get("KeyId") == arn and enc.get("EncapsulationAlgorithm") == "ML_KEM"
          and len(secret) == 32 and len(ct) == 1088, brief(enc))
    dec = kms.ok("Decapsulate", "Decapsulate",
                 {"KeyId": key_id, "SharedSecretCiphertextBlob": b64e(ct), "EncapsulationAlgorithm": "ML_KEM"})
    check("Decapsulate gives the encapsulated secret", b64d(dec.get("SharedSecret", "")) == secret)
    check("Decapsulate members", dec.get("KeyId") == arn and dec.get("EncapsulationAlgorithm") == "ML_KEM",
          {k: v for k, v in dec.items() if k != "SharedSecret"})

    local_secret, local_ct = mlkem.ML_KEM_768.encaps(ek)
    dec = kms.ok("Decapsulate a local encapsulation", "Decapsulate",
                 {"KeyId": arn, "SharedSecretCiphertextBlob": b64e(local_ct), "EncapsulationAlgorithm": "ML_KEM"})
    check("local encapsulation decapsulates to the same secret", b64d(dec.get("SharedSecret", "")) == local_secret)

    tampered = ct[:100] + bytes([ct[100] ^ 0x01]) + ct[101:]
    req = {"KeyId": arn, "SharedSecretCiphertextBlob": b64e(tampered), "EncapsulationAlgorithm": "ML_KEM"}
    first = b64d(kms.ok("Decapsulate tampered: no error (implicit rejection)", "Decapsulate", req)
                 .get("SharedSecret", ""))
    again = b64d(kms.ok("Decapsulate tampered again", "Decapsulate", req).get("SharedSecret", ""))
    check("tampered ciphertext gives another 32-byte secret, the same each time",
          len(first) == 32 and first != secret and first == again)
    for n in (1087, 1089, 0):
        kms.error(f"Decapsulate {n}-byte ciphertext", "Decapsulate",
                  {"KeyId": arn, "SharedSecretCiphertextBlob": b64e(ct[:n] if n < 1088 else ct + b"\0"),
                   "EncapsulationAlgorithm": "ML_KEM"}, "InvalidCiphertextException")
    kms.error("Encapsulate with another algorithm", "Encapsulate",
              {"KeyId": arn, "EncapsulationAlgorithm": "RSAES_OAEP_SHA_256"}, "ValidationException")
    kms.error("Encapsulate without an algorithm", "Encapsulate", {"KeyId": arn}, "ValidationException")
    kms.error("Decapsulate with another algorithm", "Decapsulate",
              {"KeyId": arn, "SharedSecretCiphertextBlob": b64e(ct), "EncapsulationAlgorithm": "X"},
              "ValidationException")
    kms.error("Encrypt with an ML-KEM key", "Encrypt", {"KeyId": arn, "Plaintext": b64e(b"x")},
              "InvalidKeyUsageException")
    kms.error("Encapsulate with an unknown key", "Encapsulate",
              {"KeyId": "11111111-2222-3333-4444-555555555555", "EncapsulationAlgorithm": "ML_KEM"},
              "NotFoundException")
    kms.error("Encapsulate with an unknown alias", "Encapsulate",
              {"KeyId": "alias/none", "EncapsulationAlgorithm": "ML_KEM"}, "NotFoundException")
    kms.error("a key ARN of another region", "DescribeKey",
              {"KeyId": arn.replace(REGION, "eu-west-1")}, "NotFoundException")

    # -- other key specs, and what CreateKey refuses --------------------------------------
    for spec in ("ML_KEM_512", "ML_KEM_1024"):
        kid = kms.ok(f"CreateKey {spec}", "CreateKey", {"KeySpec": spec, "KeyUsage": "ENCAPSULATE_DECAPSULATE"}) \
            .get("KeyMetadata", {}).get("KeyId", "")
        oid, spec_ek = parse_spki(b64d(kms.ok(f"GetPublicKey {spec}", "GetPublicKey", {"KeyId": kid})
                                       .get("PublicKey", "")))
        check(f"{spec} SPKI", oid == OIDS[spec] and len(spec_ek) == SIZES[spec][0], (oid, len(spec_ek)))
        enc = kms.ok(f"Encapsulate {spec}", "Encapsulate", {"KeyId": kid, "EncapsulationAlgorithm": "ML_KEM"})
        spec_ct = b64d(enc.get("SharedSecretCiphertextBlob", ""))
        check(f"{spec} ciphertext is {SIZES[spec][1]} bytes", len(spec_ct) == SIZES[spec][1], len(spec_ct))
        dec = kms.ok(f"Decapsulate {spec}", "Decapsulate", {"KeyId": kid, "EncapsulationAlgorithm": "ML_KEM",
                                                           "SharedSecretCiphertextBlob": b64e(spec_ct)})
        check(f"{spec} round trip", dec.get("SharedSecret") == enc.get("SharedSecret"))
    kms.error("CreateKey SYMMETRIC_DEFAULT", "CreateKey", {}, "UnsupportedOperationException")
    kms.error("CreateKey ML_KEM_768 for ENCRYPT_DECRYPT", "CreateKey",
              {"KeySpec": "ML_KEM_768", "KeyUsage": "ENCRYPT_DECRYPT"}, "ValidationException")
    kms.error("CreateKey ML_KEM_768 without a usage", "CreateKey", {"KeySpec": "ML_KEM_768"}, "ValidationException")

    # -- key states -------------------------------------------------------------------
    kms.ok("DisableKey by ARN", "DisableKey", {"KeyId": arn})
    enc_req = {"KeyId": arn, "EncapsulationAlgorithm": "ML_KEM"}
    dec_req = {"KeyId": arn, "SharedSecretCiphertextBlob": b64e(ct), "EncapsulationAlgorithm": "ML_KEM"}
    kms.error("Encapsulate with a disabled key", "Encapsulate", enc_req, "DisabledException")
    kms.error("Decapsulate with a disabled key", "Decapsulate", dec_req, "DisabledException")
    kms.error("GetPublicKey of a disabled key", "GetPublicKey", {"KeyId": arn}, "DisabledException")
    out = kms.ok("DescribeKey of a disabled key", "DescribeKey", {"KeyId": arn})
    check("disabled key state", out.get("KeyMetadata", {}).get("KeyState") == "Disabled"
          and out.get("KeyMetadata", {}).get("Enabled") is False, out)
    kms.ok("EnableKey", "EnableKey", {"KeyId": "alias/kekring-selftest"})
    kms.ok("Encapsulate after EnableKey", "Encapsulate", enc_req)
    kms.error("ScheduleKeyDeletion 6 days", "ScheduleKeyDeletion", {"KeyId": arn, "PendingWindowInDays": 6},
              "ValidationException")
    out = kms.ok("ScheduleKeyDeletion 7 days", "ScheduleKeyDeletion", {"KeyId": arn, "PendingWindowInDays": 7})
    check("ScheduleKeyDeletion answer", out.get("KeyId") == arn and out.get("KeyState") == "PendingDeletion"
          and out.get("PendingWindowInDays") == 7 and isinstance(out.get("DeletionDate"), (int, float)), out)
    kms.error("Encapsulate with a key pending deletion", "Encapsulate", enc_req, "KMSInvalidStateException")
    kms.error("Decapsulate with a key pending deletion", "Decapsulate", dec_req, "KMSInvalidStateException")
    kms.error("EnableKey of a key pending deletion", "EnableKey", {"KeyId": arn}, "KMSInvalidStateException")
    out = kms.ok("CancelKeyDeletion", "CancelKeyDeletion", {"KeyId": arn})
    check("CancelKeyDeletion answer", out.get("KeyId") == arn, out)
    kms.error("CancelKeyDeletion leaves the key disabled", "Encapsulate", enc_req, "DisabledException")
    kms.error("CancelKeyDeletion twice", "CancelKeyDeletion", {"KeyId": arn}, "KMSInvalidStateException")
    kms.ok("EnableKey after cancel", "EnableKey", {"KeyId": arn})
    dec = kms.ok("Decapsulate after the round trip of states", "Decapsulate", dec_req)
    check("same secret after the round trip of states", b64d(dec.get("SharedSecret", "")) == secret)

    # -- authentication -----------------------------------------------------------------
    kms.error("unknown access key", "Encapsulate", enc_req, "UnrecognizedClientException", access_key="AKIDNOBODY")
    kms.error("wrong secret", "Encapsulate", enc_req, "InvalidSignatureException", secret="not-the-secret")
    kms.error("body changed after signing", "Encapsulate", enc_req, "InvalidSignatureException", tamper_body=True)
    kms.error("another region in the scope", "Encapsulate", enc_req, "InvalidSignatureException",
              region="eu-west-1")
    kms.error("another service in the scope", "Encapsulate", enc_req, "InvalidSignatureException", service="s3")
    kms.error("a date an hour old", "Encapsulate", enc_req, "InvalidSignatureException",
              when=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1))
    kms.error("denied principal", "Encapsulate", enc_req, "AccessDeniedException", access_key=DENY_KEY)
    kms.error("denied principal, Decapsulate", "Decapsulate", dec_req, "AccessDeniedException", access_key=DENY_KEY)
    kms.error("expired token", "Encapsulate", enc_req, "ExpiredTokenException", token="expired")
    body = json.dumps(enc_req).encode()
    status, _, out = kms.raw("POST", "/", body, {"Content-Type": JSON11, "X-Amz-Target": "TrentService.Encapsulate"})
    check("no Authorization header", status == 400 and out.get("__type") == "MissingAuthenticationTokenException",
          out)

    # -- throttling -----------------------------------------------------------------------
    status, _, out = kms.raw("POST", "/fake-api/throttle", b'{"count": 2}', {"Content-Type": "application/json"})
    check("throttle control", status == 200 and out == {"count": 2}, out)
    kms.error("throttled call 1", "Encapsulate", enc_req, "ThrottlingException")
    kms.error("throttled call 2", "DescribeKey", {"KeyId": arn}, "ThrottlingException")
    kms.ok("call after the throttled ones", "Encapsulate", enc_req)

    # -- the other faults (scripts/fake_base.py) ------------------------------------------
    other = kms.ok("a second key", "CreateKey", {"KeySpec": "ML_KEM_768", "KeyUsage": "ENCAPSULATE_DECAPSULATE"})
    other_arn = other.get("KeyMetadata", {}).get("Arn", "")
    status, _, out = kms.raw("POST", "/fake-api/unavailable", json.dumps({"count": 1, "key": arn}).encode(),
                             {"Content-Type": "application/json"})
    check("unavailable control for one key", status == 200, out)
    kms.ok("another key is not affected", "DescribeKey", {"KeyId": other_arn})
    status, headers, out = kms.call("DescribeKey", {"KeyId": key_id})
    check("the key, by another spelling, answers 503 ServiceUnavailableException",
          status == 503 and out.get("__type") == "ServiceUnavailableException"
          and headers.get("x-amzn-ErrorType") == "ServiceUnavailableException", f"HTTP {status} {brief(out)}")
    kms.raw("POST", "/fake-api/oversize", b'{"count": 1}', {"Content-Type": "application/json"})
    status, headers, out = kms.call("DescribeKey", {"KeyId": arn})
    check("oversize: a 200 answer larger than 1 MiB that still parses",
          status == 200 and int(headers.get("Content-Length", "0")) > (1 << 20)
          and out.get("KeyMetadata", {}).get("Arn") == arn, f"HTTP {status}")
    kms.ok("the answer after the oversized one is plain", "DescribeKey", {"KeyId": arn})
    status, _, out = kms.raw("POST", "/fake-api/misname", json.dumps({"key": "alias/none"}).encode(),
                             {"Content-Type": "application/json"})
    check("a fault for an unknown key is refused", status == 400, out)

    check("every request went over one keep-alive connection", kms.conn.sock is sock and sock is not None)


# ---------------------------------------------------------------------------------------


def start_fake() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(HERE / "fake_kms.py"), "--port", str(port)],
                            stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fake_kms.py exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/fake-api/health")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, endpoint
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("fake_kms.py did not become ready within 30 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="a running fake, e.g. http://127.0.0.1:PORT")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    sys.dont_write_bytecode = True  # no __pycache__ in the work tree
    import fake_kms

    started = time.monotonic()
    check_vectors(fake_kms)
    check_kyber()
    proc = None
    endpoint = args.endpoint
    if endpoint is None:
        proc, endpoint = start_fake()
    try:
        check_service(endpoint)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"fake_kms selftest: {passed} passed, {len(failures)} failed ({time.monotonic() - started:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
