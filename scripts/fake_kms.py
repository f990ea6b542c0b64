#!/usr/bin/env python3
"""kekring's fake of AWS KMS, for ML-KEM and RSA keys (the JSON 1.1 protocol, as AWS documents it).

    python scripts/fake_kms.py --port PORT [--host 127.0.0.1] [--region us-east-1]

No local KMS server implements Encapsulate / Decapsulate, and LocalStack and moto answer
Encrypt with an RSA key with a blob of their own instead of an RSA-OAEP ciphertext, so
kekring's tests of its ML-KEM and RSA KMS keys run against this fake. It needs `kyber-py`
(pure-Python FIPS 203 ML-KEM) and `cryptography` (RSA-OAEP); scripts/servers.py runs it
from a venv that has both.

Protocol: `POST /` with `X-Amz-Target: TrentService.<Operation>` and
`Content-Type: application/x-amz-json-1.1`; blobs are base64 in JSON; errors are HTTP 400
with `{"__type": "<Name>", "message": "..."}` and an `x-amzn-ErrorType` header.

What it checks, like the service:
- SigV4 (AWS4-HMAC-SHA256), verified for real: service `kms`, the server's region, the
  date, the signed headers and the payload hash. Credentials: access key `AKIDKEKRINGTEST`
  with secret `kekring-test-secret`; `AKIDKEKRINGDENY` (same secret) is a principal that
  every key policy denies (AccessDeniedException). An unknown access key is
  UnrecognizedClientException, a wrong signature (or a scope of another service or region,
  or an X-Amz-Date more than 5 minutes off) InvalidSignatureException, no Authorization
  header MissingAuthenticationTokenException. `X-Amz-Security-Token: expired` is
  ExpiredTokenException; any other session token is UnrecognizedClientException (the test
  credentials have none).
- Key states: disabled -> DisabledException, pending deletion -> KMSInvalidStateException,
  unknown key or alias -> NotFoundException; an operation for another key usage (Encrypt,
  Sign, ...) on an ML-KEM key -> InvalidKeyUsageException.
- Decapsulate uses implicit rejection (FIPS 203): a tampered ciphertext of the right length
  gives a pseudo-random shared secret and no error; only a wrong length is
  InvalidCiphertextException.

Operations: CreateKey (ML_KEM_512 / ML_KEM_768 / ML_KEM_1024 with ENCAPSULATE_DECAPSULATE;
RSA_2048 / RSA_3072 / RSA_4096 with ENCRYPT_DECRYPT), DescribeKey, CreateAlias,
DeleteAlias, ListAliases, GetPublicKey (DER SubjectPublicKeyInfo; for ML-KEM as in RFC
9935), Encapsulate, Decapsulate, Encrypt and Decrypt with RSA keys (RSAES_OAEP_SHA_1 /
_SHA_256 required, no encryption context, the plaintext limits of the developer guide,
KeyId required on Decrypt, a bad ciphertext InvalidCiphertextException), DisableKey,
EnableKey, ScheduleKeyDeletion, CancelKeyDeletion. A key is named by its id, its ARN, an alias name
(`alias/...`) or an alias ARN; answers name the key by its ARN.

Test-only control endpoints (not signed):
    GET  /fake-api/health              readiness
    POST /fake-api/throttle {"count": N, "key": K}   the next N KMS calls naming key K (any
                                       key id, ARN or alias; every call when K is left out)
                                       answer ThrottlingException (the AWS SDKs retry it:
                                       3 attempts in standard mode)
    POST /fake-api/unavailable {...}   the same with ServiceUnavailableException (503)
    POST /fake-api/oversize {...}      the same with an answer padded past 1 MiB
    POST /fake-api/misname {"count": N, "key": K}    the next N answers for key K name
                                       another key's ARN
    POST /fake-api/reset               forget every key and alias
(the server, the controls and the key states are scripts/fake_base.py's).

State is in memory. One log line per request (operation, last 12 characters of the key
id, outcome); shared secrets and private keys are never logged.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import re
import sys
import time
import urllib.parse
import uuid

from fake_base import Answer, FakeService, KeyLifecycle, Request, ServiceError, StateError, serve

ACCOUNT = "111122223333"
SERVICE = "kms"
# access key -> (secret key, allowed by key policies)
CREDENTIALS = {
    "AKIDKEKRINGTEST": ("kekring-test-secret", True),
    "AKIDKEKRINGDENY": ("kekring-test-secret", False),
}
EXPIRED_TOKEN = "expired"
# How far a request's X-Amz-Date may be from the server's clock, as AWS allows.
MAX_SKEW = datetime.timedelta(minutes=5)

# Key spec -> (kyber-py parameter set name, FIPS 203 sizes, SPKI algorithm OID).
ML_KEM_SPECS = {
    "ML_KEM_512": ("ML_KEM_512", (800, 1632, 768), "2.16.840.1.101.3.4.4.1"),
    "ML_KEM_768": ("ML_KEM_768", (1184, 2400, 1088), "2.16.840.1.101.3.4.4.2"),
    "ML_KEM_1024": ("ML_KEM_1024", (1568, 3168, 1568), "2.16.840.1.101.3.4.4.3"),
}
# Every KeySpec the service knows (aws-sdk-kms types::KeySpec).
KEY_SPECS = {
    "ECC_NIST_EDWARDS25519", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
    "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87",
    "ML_KEM_1024", "ML_KEM_512", "ML_KEM_768", "RSA_2048", "RSA_3072", "RSA_4096", "SM2",
    "SYMMETRIC_DEFAULT",
}
KEY_USAGES = {"ENCAPSULATE_DECAPSULATE", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "SIGN_VERIFY"}
ENCAPSULATION_ALGORITHMS = ["ML_KEM"]
# RSA key spec -> (modulus bits, largest plaintext for RSAES_OAEP_SHA_1, for _SHA_256),
# as the KMS developer guide lists them.
RSA_SPECS = {
    "RSA_2048": (2048, 214, 190),
    "RSA_3072": (3072, 342, 318),
    "RSA_4096": (4096, 470, 446),
}
RSA_ENCRYPTION_ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
# Operations of other key usages: on an ML-KEM key the service answers InvalidKeyUsageException.
OTHER_USAGE_OPERATIONS = {
    "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "Sign", "Verify",
    "GenerateMac", "VerifyMac", "DeriveSharedSecret",
}


class KmsError(ServiceError):
    """An error answer: AWS error name, message, HTTP status."""

    def __init__(self, name: str, message: str, status: int = 400):
        super().__init__(status, name, message)


def validation(message: str) -> KmsError:
    return KmsError("ValidationException", message)


# ---------------------------------------------------------------------------------------
# SigV4 verification


def uri_encode(text: str, keep_slash: bool) -> str:
    """RFC 3986 encoding as SigV4 wants it: only unreserved characters stay as they are."""
    return urllib.parse.quote(text, safe="-_.~/" if keep_slash else "-_.~")


def normalize_path(path: str) -> str:
    """Removes `.` and `..` segments and repeated slashes (the SDK signs the normalized path)."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    result = "/" + "/".join(out)
    if path.endswith("/") and result != "/":
        result += "/"
    return result


def canonical_query(raw_query: str) -> str:
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        key, _, value = part.partition("=")
        pairs.append((uri_encode(urllib.parse.unquote(key), False), uri_encode(urllib.parse.unquote(value), False)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_header_value(values: list[str]) -> str:
    return ",".join(re.sub(" +", " ", v.strip()) for v in values)


def canonical_request(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]],
                      signed_headers: list[str], payload_hash: str) -> str:
    """The SigV4 canonical request. `raw_path` is the path as sent (percent-encoded); for
    services other than S3 it is encoded once more, as AWS does."""
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(name.lower(), []).append(value)
    lines = [method, uri_encode(normalize_path(raw_path), True), canonical_query(raw_query)]
    lines += [f"{h}:{canonical_header_value(by_name.get(h, []))}" for h in signed_headers]
    lines += ["", ";".join(signed_headers), payload_hash]
    return "\n".join(lines)


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])


AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})\s*$"
)


def verify_sigv4(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]],
                 body: bytes, region: str, now: datetime.datetime) -> str:
    """Checks the request's signature; returns the access key of the principal or raises."""
    get = {}
    for name, value in headers:
        get.setdefault(name.lower(), value)
    auth = get.get("authorization")
    if not auth:
        raise KmsError("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise KmsError("IncompleteSignatureException",
                       "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                       "parameters (AWS4-HMAC-SHA256).")
    credential, signed, signature = m.groups()
    scope_parts = credential.split("/")
    if len(scope_parts) != 5 or scope_parts[4] != "aws4_request":
        raise KmsError("IncompleteSignatureException", f"Credential is malformed: {credential}")
    access_key, date, cred_region, service, _ = scope_parts
    if access_key not in CREDENTIALS:
        raise KmsError("UnrecognizedClientException", "The security token included in the request is invalid.")
    token = get.get("x-amz-security-token")
    if token is not None:
        if token == EXPIRED_TOKEN:
            raise KmsError("ExpiredTokenException", "The security token included in the request is expired")
        raise KmsError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if service != SERVICE:
        raise KmsError("InvalidSignatureException", f"Credential should be scoped to correct service: '{SERVICE}'.")
    if cred_region != region:
        raise KmsError("InvalidSignatureException",
                       f"Credential should be scoped to a valid region, not '{cred_region}'.")
    amz_date = get.get("x-amz-date")
    if not amz_date:
        raise KmsError("IncompleteSignatureException",
                       "Authorization header requires existence of a 'X-Amz-Date' header.")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise KmsError("IncompleteSignatureException", f"Date must be in ISO-8601 'basic format', got '{amz_date}'.")
    if date != amz_date[:8]:
        raise KmsError("InvalidSignatureException",
                       f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                       f"'{date}' != '{amz_date[:8]}'")
    if abs(now - when) > MAX_SKEW:
        raise KmsError("InvalidSignatureException",
                       f"Signature expired: {amz_date} is now earlier or later than "
                       f"{now:%Y%m%dT%H%M%SZ} (5 min. allowed).")
    signed_headers = signed.split(";")
    if signed_headers != sorted(signed_headers) or any(h != h.lower() for h in signed_headers):
        raise KmsError("InvalidSignatureException", "SignedHeaders must be lowercase and sorted.")
    if "host" not in signed_headers:
        raise KmsError("InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
    missing = [h for h in signed_headers if h not in get]
    if missing:
        raise KmsError("InvalidSignatureException", f"Signed header(s) not in the request: {', '.join(missing)}")
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical = canonical_request(method, raw_path, raw_query, headers, signed_headers, payload_hash)
    scope = f"{date}/{cred_region}/{service}/aws4_request"
    secret = CREDENTIALS[access_key][0]
    expected = hmac.new(signing_key(secret, date, cred_region, service),
                        string_to_sign(amz_date, scope, canonical).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise KmsError("InvalidSignatureException",
                       "The request signature we calculated does not match the signature you provided. "
                       "Check your AWS Secret Access Key and signing method. "
                       "Consult the service documentation for details.")
    return access_key


# ---------------------------------------------------------------------------------------
# ML-KEM keys


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_length(len(content)) + content


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return der(0x06, bytes(out))


def ml_kem_spki(spec: str, encapsulation_key: bytes) -> bytes:
    """SubjectPublicKeyInfo for an ML-KEM key (RFC 9935): the algorithm's OID with no
    parameters, and the raw FIPS 203 encapsulation key as the BIT STRING."""
    oid = ML_KEM_SPECS[spec][2]
    algorithm = der(0x30, der_oid(oid))
    return der(0x30, algorithm + der(0x03, b"\x00" + encapsulation_key))


def ml_kem(spec: str):
    import kyber_py.ml_kem as params  # imported late: `--help` works without kyber-py

    return getattr(params, ML_KEM_SPECS[spec][0])


class Key:
    def __init__(self, region: str, spec: str, usage: str, description: str):
        self.id = str(uuid.uuid4())
        self.arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/{self.id}"
        self.spec = spec
        self.usage = usage
        self.description = description
        self.created = time.time()
        # A cancelled deletion leaves the key disabled, as in the service.
        self.life = KeyLifecycle(cancel_to=KeyLifecycle.DISABLED)
        self.ek = self.dk = self.rsa = None
        if spec in ML_KEM_SPECS:
            self.ek, self.dk = ml_kem(spec).keygen()
        else:
            from cryptography.hazmat.primitives.asymmetric import rsa
            self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=RSA_SPECS[spec][0])

    STATES = {KeyLifecycle.ENABLED: "Enabled", KeyLifecycle.DISABLED: "Disabled",
              KeyLifecycle.PENDING: "PendingDeletion", KeyLifecycle.DESTROYED: "PendingDeletion"}

    @property
    def state(self) -> str:
        return self.STATES[self.life.state]

    def metadata(self) -> dict:
        meta = {
            "AWSAccountId": ACCOUNT,
            "KeyId": self.id,
            "Arn": self.arn,
            "CreationDate": round(self.created, 3),
            "Enabled": self.state == "Enabled",
            "Description": self.description,
            "KeyUsage": self.usage,
            "KeyState": self.state,
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "KeySpec": self.spec,
            "MultiRegion": False,
        }
        if self.spec in ML_KEM_SPECS:
            meta["EncapsulationAlgorithms"] = ENCAPSULATION_ALGORITHMS
        else:
            meta["EncryptionAlgorithms"] = RSA_ENCRYPTION_ALGORITHMS
        if self.state == "PendingDeletion":
            meta["DeletionDate"] = round(self.life.deletion_due, 3)
            meta["PendingDeletionWindowInDays"] = self.life.pending_days
        return meta


# ---------------------------------------------------------------------------------------
# The service


def b64decode(value: object, member: str) -> bytes:
    if not isinstance(value, str):
        raise KmsError("SerializationException", f"{member}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KmsError("SerializationException", f"{member}: not valid base64")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Service(FakeService):
    """The fake's state and operations. One lock guards the tables; key material never
    changes after creation, so KEM work runs outside it."""

    name = "fake-kms"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--region", default="us-east-1")

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.region = args.region
        ml_kem("ML_KEM_768")  # fail now, not at the first request, without kyber-py
        self.keys: dict[str, Key] = {}
        self.aliases: dict[str, tuple[str, float]] = {}  # alias name -> (key id, created)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.keys.clear()
            self.aliases.clear()

    def health(self) -> dict:
        return {"status": "ok", "region": self.region}

    def key_scope(self, key: str) -> str | None:
        try:
            return self.resolve(key).id
        except KmsError:
            return None

    def throttle_error(self) -> ServiceError:
        return KmsError("ThrottlingException", "Rate exceeded")

    def unavailable_error(self) -> ServiceError:
        return KmsError("ServiceUnavailableException", "The service is unavailable.", 503)

    def error_answer(self, e: ServiceError) -> Answer:
        code = "KMSInternalException" if e.code == "InternalError" else e.code
        return Answer(e.status, {"__type": code, "message": e.message}, {"x-amzn-ErrorType": code},
                      content_type="application/x-amz-json-1.1")

    # -- naming keys ------------------------------------------------------------------

    def alias_arn(self, name: str) -> str:
        return f"arn:aws:kms:{self.region}:{ACCOUNT}:{name}"

    def resolve(self, key_id: object) -> Key:
        """A key from its id, key ARN, alias name or alias ARN."""
        if not isinstance(key_id, str) or not key_id:
            raise validation("1 validation error detected: Value null at 'keyId' failed to satisfy "
                             "constraint: Member must not be null")
        name = key_id
        if key_id.startswith("arn:"):
            parts = key_id.split(":", 5)
            if len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms":
                raise KmsError("NotFoundException", f"Invalid arn {key_id}")
            if parts[3] != self.region or parts[4] != ACCOUNT:
                raise KmsError("NotFoundException", f"Invalid arn {self.region}: {key_id}")
            name = parts[5]
            if name.startswith("key/"):
                name = name[len("key/"):]
            elif not name.startswith("alias/"):
                raise KmsError("NotFoundException", f"Invalid arn {key_id}")
        with self.lock:
            if name.startswith("alias/"):
                target = self.aliases.get(name)
                if target is None:
                    raise KmsError("NotFoundException", f"Alias {self.alias_arn(name)} is not found.")
                name = target[0]
            key = self.keys.get(name)
        if key is None:
            raise KmsError("NotFoundException",
                           f"Key 'arn:aws:kms:{self.region}:{ACCOUNT}:key/{name}' does not exist")
        self.last.key = key.id
        return key

    @staticmethod
    def usable(key: Key) -> None:
        """The key-state checks of a cryptographic operation."""
        if key.state == "Disabled":
            raise KmsError("DisabledException", f"{key.arn} is disabled.")
        if key.state != "Enabled":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")

    @staticmethod
    def kem_usage(key: Key) -> None:
        if key.usage != "ENCAPSULATE_DECAPSULATE" or key.spec not in ML_KEM_SPECS:
            raise KmsError("InvalidKeyUsageException",
                           f"{key.arn} key usage is {key.usage} which is not valid for this operation.")

    @staticmethod
    def algorithm(req: dict) -> None:
        alg = req.get("EncapsulationAlgorithm")
        if alg is None:
            raise validation("1 validation error detected: Value null at 'encapsulationAlgorithm' failed to "
                             "satisfy constraint: Member must not be null")
        if alg not in ENCAPSULATION_ALGORITHMS:
            raise validation(f"1 validation error detected: Value '{alg}' at 'encapsulationAlgorithm' failed "
                             f"to satisfy constraint: Member must satisfy enum value set: [ML_KEM]")

    # -- operations (each takes the JSON request, returns the JSON answer) -------------

    def CreateKey(self, req: dict) -> dict:
        spec = req.get("KeySpec") or req.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        usage = req.get("KeyUsage") or "ENCRYPT_DECRYPT"
        if spec not in KEY_SPECS:
            raise validation(f"1 validation error detected: Value '{spec}' at 'keySpec' failed to satisfy "
                             "constraint: Member must satisfy enum value set")
        if usage not in KEY_USAGES:
            raise validation(f"1 validation error detected: Value '{usage}' at 'keyUsage' failed to satisfy "
                             "constraint: Member must satisfy enum value set")
        if (spec in ML_KEM_SPECS) != (usage == "ENCAPSULATE_DECAPSULATE"):
            raise validation(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
        if spec in RSA_SPECS and usage != "ENCRYPT_DECRYPT":
            raise KmsError("UnsupportedOperationException",
                           f"KeySpec {spec} with {usage}: this fake KMS has RSA encryption keys only")
        if spec not in ML_KEM_SPECS and spec not in RSA_SPECS:
            raise KmsError("UnsupportedOperationException",
                           f"KeySpec {spec}: this fake KMS has ML-KEM and RSA keys only")
        if req.get("Origin", "AWS_KMS") != "AWS_KMS":
            raise KmsError("UnsupportedOperationException", "this fake KMS has Origin AWS_KMS only")
        key = Key(self.region, spec, usage, str(req.get("Description", "")))
        self.last.key = key.id
        with self.lock:
            self.keys[key.id] = key
        return {"KeyMetadata": key.metadata()}

    def DescribeKey(self, req: dict) -> dict:
        return {"KeyMetadata": self.resolve(req.get("KeyId")).metadata()}

    def CreateAlias(self, req: dict) -> dict:
        name = req.get("AliasName")
        if not isinstance(name, str) or not re.fullmatch(r"alias/[a-zA-Z0-9/_-]{1,250}", name):
            raise KmsError("InvalidAliasNameException", f"Alias name {name!r} must begin with 'alias/'")
        if name.startswith("alias/aws/"):
            raise KmsError("NotFoundException", "Aliases beginning with 'alias/aws/' are reserved.")
        target = req.get("TargetKeyId")
        if isinstance(target, str) and ("alias/" in target):
            raise validation("TargetKeyId must be a key id or key ARN, not an alias")
        key = self.resolve(target)
        if key.state == "PendingDeletion":
            raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
        with self.lock:
            if name in self.aliases:
                raise KmsError("AlreadyExistsException",
                               f"An alias with the name {self.alias_arn(name)} already exists")
            self.aliases[name] = (key.id, time.time())
        return {}

    def DeleteAlias(self, req: dict) -> dict:
        name = req.get("AliasName")
        with self.lock:
            if name not in self.aliases:
                raise KmsError("NotFoundException", f"Alias {self.alias_arn(str(name))} is not found.")
            del self.aliases[name]
        return {}

    def ListAliases(self, req: dict) -> dict:
        only = self.resolve(req["KeyId"]).id if req.get("KeyId") else None
        with self.lock:
            entries = [
                {"AliasName": name, "AliasArn": self.alias_arn(name), "TargetKeyId": kid,
                 "CreationDate": round(created, 3)}
                for name, (kid, created) in sorted(self.aliases.items())
                if only is None or kid == only
            ]
        return {"Aliases": entries, "Truncated": False}

    def GetPublicKey(self, req: dict) -> dict:
        key = self.resolve(req.get("KeyId"))
        self.usable(key)
        if key.rsa is not None:
            from cryptography.hazmat.primitives import serialization
            spki = key.rsa.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return {
                "KeyId": key.arn,
                "PublicKey": b64(spki),
                "KeySpec": key.spec,
                "KeyUsage": key.usage,
                "EncryptionAlgorithms": RSA_ENCRYPTION_ALGORITHMS,
            }
        self.kem_usage(key)
        return {
            "KeyId": key.arn,
            "PublicKey": b64(ml_kem_spki(key.spec, key.ek)),
            "KeySpec": key.spec,
            "KeyUsage": key.usage,
            "EncapsulationAlgorithms": ENCAPSULATION_ALGORITHMS,
        }

    def Encapsulate(self, req: dict) -> dict:
        self.algorithm(req)
        key = self.resolve(req.get("KeyId"))
        self.usable(key)
        self.kem_usage(key)
        secret, ciphertext = ml_kem(key.spec).encaps(key.ek)
        return {
            "KeyId": key.arn,
            "SharedSecret": b64(secret),
            "SharedSecretCiphertextBlob": b64(ciphertext),
            "EncapsulationAlgorithm": "ML_KEM",
        }

    def Decapsulate(self, req: dict) -> dict:
        self.algorithm(req)
        if req.get("SharedSecretCiphertextBlob") is None:
            raise validation("1 validation error detected: Value null at 'sharedSecretCiphertextBlob' failed "
                             "to satisfy constraint: Member must not be null")
        ciphertext = b64decode(req["SharedSecretCiphertextBlob"], "SharedSecretCiphertextBlob")
        key = self.resolve(req.get("KeyId"))
        self.usable(key)
        self.kem_usage(key)
        if len(ciphertext) != ML_KEM_SPECS[key.spec][1][2]:
            raise KmsError("InvalidCiphertextException",
                           f"SharedSecretCiphertextBlob is {len(ciphertext)} bytes; {key.spec} takes "
                           f"{ML_KEM_SPECS[key.spec][1][2]}")
        # FIPS 203 ML-KEM.Decaps: implicit rejection, so a tampered ciphertext of the right
        # length yields a pseudo-random secret and no error.
        secret = ml_kem(key.spec).decaps(key.dk, ciphertext)
        return {"KeyId": key.arn, "SharedSecret": b64(secret), "EncapsulationAlgorithm": "ML_KEM"}

    @staticmethod
    def oaep(key: Key, req: dict):
        """The OAEP padding an RSA Encrypt or Decrypt names (required for asymmetric keys)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        if key.rsa is None:
            raise KmsError("InvalidKeyUsageException",
                           f"{key.arn} key usage is {key.usage} which is not valid for this operation.")
        alg = req.get("EncryptionAlgorithm") or "SYMMETRIC_DEFAULT"
        if alg not in RSA_ENCRYPTION_ALGORITHMS:
            raise KmsError("InvalidKeyUsageException",
                           f"{key.arn}: EncryptionAlgorithm {alg} is not valid for KeySpec {key.spec}")
        if req.get("EncryptionContext"):
            raise validation("EncryptionContext is not supported with asymmetric KMS keys")
        digest = hashes.SHA256() if alg == "RSAES_OAEP_SHA_256" else hashes.SHA1()
        return alg, padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)

    def Encrypt(self, req: dict) -> dict:
        key = self.resolve(req.get("KeyId"))
        self.usable(key)
        alg, pad = self.oaep(key, req)
        plaintext = b64decode(req.get("Plaintext"), "Plaintext")
        limit = RSA_SPECS[key.spec][2 if alg == "RSAES_OAEP_SHA_256" else 1]
        if not plaintext or len(plaintext) > limit:
            raise validation(f"Plaintext of {len(plaintext)} bytes: {key.spec} with {alg} takes 1 to {limit}")
        return {"KeyId": key.arn, "CiphertextBlob": b64(key.rsa.public_key().encrypt(plaintext, pad)),
                "EncryptionAlgorithm": alg}

    def Decrypt(self, req: dict) -> dict:
        if req.get("KeyId") is None:
            # An RSA ciphertext names no key: the service needs KeyId for asymmetric keys.
            raise KmsError("InvalidCiphertextException", "the ciphertext names no key of this fake KMS")
        key = self.resolve(req.get("KeyId"))
        self.usable(key)
        alg, pad = self.oaep(key, req)
        ciphertext = b64decode(req.get("CiphertextBlob"), "CiphertextBlob")
        try:
            plaintext = key.rsa.decrypt(ciphertext, pad)
        except ValueError:
            raise KmsError("InvalidCiphertextException", "the ciphertext is invalid for this key")
        return {"KeyId": key.arn, "Plaintext": b64(plaintext), "EncryptionAlgorithm": alg}

    def transition(self, key: Key, change) -> None:
        with self.lock:
            try:
                change()
            except StateError:
                pending = key.state == "PendingDeletion"
                raise KmsError("KMSInvalidStateException",
                               f"{key.arn} is {'pending deletion' if pending else 'not pending deletion'}.")

    def DisableKey(self, req: dict) -> dict:
        key = self.resolve(req.get("KeyId"))
        self.transition(key, key.life.disable)
        return {}

    def EnableKey(self, req: dict) -> dict:
        key = self.resolve(req.get("KeyId"))
        self.transition(key, key.life.enable)
        return {}

    def ScheduleKeyDeletion(self, req: dict) -> dict:
        days = req.get("PendingWindowInDays", 30)
        if not isinstance(days, int) or isinstance(days, bool) or not 7 <= days <= 30:
            raise validation(f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to "
                             "satisfy constraint: Member must have value between 7 and 30")
        key = self.resolve(req.get("KeyId"))
        self.transition(key, lambda: key.life.schedule_deletion(days))
        return {"KeyId": key.arn, "DeletionDate": round(key.life.deletion_due, 3),
                "KeyState": "PendingDeletion", "PendingWindowInDays": days}

    def CancelKeyDeletion(self, req: dict) -> dict:
        key = self.resolve(req.get("KeyId"))
        self.transition(key, key.life.cancel_deletion)
        return {"KeyId": key.arn}

    def other_usage(self, op: str, req: dict) -> dict:
        """Operations of key usages this fake does not hold (signing, MACs, data keys)."""
        if req.get("KeyId") is None and op == "Decrypt":
            raise KmsError("InvalidCiphertextException", "the ciphertext names no key of this fake KMS")
        key = self.resolve(req.get("KeyId") or req.get("DestinationKeyId"))
        self.usable(key)
        raise KmsError("InvalidKeyUsageException",
                       f"{key.arn} key usage is {key.usage} which is not valid for {op}.")

    OPERATIONS = {
        "CreateKey", "DescribeKey", "CreateAlias", "DeleteAlias", "ListAliases", "GetPublicKey",
        "Encapsulate", "Decapsulate", "Encrypt", "Decrypt", "DisableKey", "EnableKey",
        "ScheduleKeyDeletion", "CancelKeyDeletion",
    }

    def call(self, op: str, req: dict) -> dict:
        self.last.key = None
        if op in self.OPERATIONS:
            return getattr(self, op)(req)
        if op in OTHER_USAGE_OPERATIONS:
            return self.other_usage(op, req)
        raise KmsError("UnknownOperationException", f"this fake KMS does not implement {op}")


    # -- the wire (fake_base serves it) ------------------------------------------------

    def handle(self, req: Request) -> Answer:
        if req.method != "POST":
            raise KmsError("UnknownOperationException", f"{req.method} {req.path}: KMS takes POST /", 404)
        target = req.header("X-Amz-Target") or ""
        if not target.startswith("TrentService."):
            raise KmsError("UnknownOperationException", f"unknown X-Amz-Target {target!r}")
        op = self.last.op = target[len("TrentService."):]
        access_key = verify_sigv4("POST", req.path, req.query, req.headers, req.body,
                                  self.region, datetime.datetime.now(datetime.timezone.utc))
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-amz-json-1.1":
            raise KmsError("SerializationException", f"Content-Type {ctype!r}: expected application/x-amz-json-1.1")
        body = req.json(lambda m: KmsError("SerializationException", m))
        key_id = str(body.get("KeyId") or body.get("TargetKeyId") or "")
        self.last.key = key_id or None
        if not CREDENTIALS[access_key][1]:
            raise KmsError("AccessDeniedException",
                           f"User: arn:aws:iam::{ACCOUNT}:user/kekring-deny is not authorized to perform: "
                           f"kms:{op} because an explicit deny in a resource-based policy applies")
        self.inject(key_id)
        out = self.call(op, body)
        if "KeyId" in out and self.take_fault("misname", key_id):
            # A faulty or hostile service: the answer names another key.
            out["KeyId"] = out["KeyId"][:-12] + "000000000000"
        return Answer(200, out, content_type="application/x-amz-json-1.1")


if __name__ == "__main__":
    sys.exit(serve(Service, __doc__))
