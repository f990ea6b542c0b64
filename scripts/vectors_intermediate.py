#!/usr/bin/env python3
"""Writes tests/data/intermediate_v1.json: vectors of the intermediate-key construction
(FORMAT.md section 11.3), computed with an implementation independent of kekring's
(pyca/cryptography: AES-GCM and RFC 3394 key wrap).

    python scripts/vectors_intermediate.py > tests/data/intermediate_v1.json

Run it with a Python that has `cryptography` (the fake KMS's virtualenv has it:
scripts/servers.py installs it). Every input is fixed, so the output is too; kekring's
unit tests (`backend::kit::intermediate`) recompute each vector and compare.
"""

import json
import struct
import sys

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap


def vec(n: int, data: bytes) -> bytes:
    return {1: struct.pack(">B", len(data)), 2: struct.pack(">H", len(data)), 4: struct.pack(">I", len(data))}[n] + data


# The binding context of FORMAT.md section 5.
CLASS = {"public": b"\x01", "internal": b"\x02", "confidential": b"\x03", "restricted": b"\x04"}


def binding(tenant: str, purpose: str, object_id: bytes, classification: str, aad: bytes) -> bytes:
    return (b"kekring/v1/binding" + vec(1, tenant.encode()) + vec(1, purpose.encode())
            + vec(2, object_id) + CLASS[classification] + vec(4, aad))


def fixed(seed: int, n: int) -> bytes:
    return bytes((seed * 31 + i * 7) % 256 for i in range(n))


def main() -> int:
    service_key = fixed(1, 32)
    cases = []
    for i, (algorithm, classification, aad) in enumerate([
        ("aes256-kw-ik", "confidential", b"abc"),
        ("aes256-kw-ik", "restricted", b""),
        ("rsa3072-oaep-sha256-ik", "internal", b"row 17"),
    ]):
        ik, nonce, dek = fixed(10 + i, 32), fixed(20 + i, 12), fixed(30 + i, 32)
        ctx = {"tenant": "acme", "purpose": "docs", "object_id_hex": f"invoice-{i:04}".encode().hex(),
               "classification": classification, "aad_hex": aad.hex()}
        b = binding("acme", "docs", bytes.fromhex(ctx["object_id_hex"]), classification, aad)
        gcm_aad = b"kekring/v1/intermediate/" + algorithm.encode() + b
        wrapped = nonce + AESGCM(ik).encrypt(nonce, dek, gcm_aad)
        case = {"algorithm": algorithm, "context": ctx, "intermediate_key_hex": ik.hex(),
                "nonce_hex": nonce.hex(), "dek_hex": dek.hex(), "wrapped_hex": wrapped.hex()}
        if algorithm == "aes256-kw-ik":
            case["service_key_hex"] = service_key.hex()
            case["params_hex"] = aes_key_wrap(service_key, ik).hex()
        cases.append(case)
    doc = {
        "about": ("kekring wire format v1: the intermediate-key construction (FORMAT.md 11.3). "
                  "wrapped = nonce || AES-256-GCM(intermediate key, nonce, aad = "
                  "'kekring/v1/intermediate/' || algorithm name || binding context, DEK); for "
                  "aes256-kw-ik, params = RFC 3394 AES-256 key wrap of the intermediate key under "
                  "the service's key. Made by scripts/vectors_intermediate.py with pyca/cryptography "
                  f"{cryptography.__version__}, independently of kekring; fixed inputs."),
        "format_version": 1,
        "vectors": cases,
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
