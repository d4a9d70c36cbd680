"""A minimal reader of a Strongroom vault, written from docs/FORMAT.md alone.

It needs only the Python standard library and pyca/cryptography (no Strongroom code), and follows
the section "Reading a vault without Strongroom" step by step: passphrase -> slot -> role keys ->
header check -> catalog -> objects -> records. It reads format 2, and format 1 as its appendix
describes it.

    python read_vault.py VAULT --user admin --passphrase-file FILE   (FILE "-": standard input)

It prints one JSON document: every dataset version with the digest it re-derived from the records,
and every model with its weights' SHA-256, tensors and card. Anything the document says to refuse
ends it with exit status 1 and a line on standard error. `--test-kdf` accepts the cheap Argon2id
parameters that Strongroom's own tests write (never use it on a real vault).
"""

from __future__ import annotations

import argparse
import base64
import decimal
import hashlib
import hmac
import json
import math
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CHUNK, TAG, SALT, COMMITMENT = 16384, 16, 24, 32
HEADER = SALT + COMMITMENT
MAX_CHUNKS = 2**38
FLOOR, TEST_FLOOR, CEILING = (19456, 2, 1), (64, 1, 1), (4194304, 20, 64)  # memory_kib, iterations, lanes
ROLE_KEYS = {"auditor": 1, "operator": 2, "admin": 3}  # meta, data, authority seed: 32 bytes each
SIGNED_SLOT_FIELDS = (
    "user",
    "role",
    "created",
    "public",
    "signing_public",
    "certificate",
    "ephemeral",
    "sealed_keys",
)
DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2}
DTYPE_SIZE |= {"I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


class Refused(Exception):
    """The vault, or the passphrase, is not what the document says: stop."""


# ---------------------------------------------------------------- encodings
def strict_json(data: bytes) -> Any:
    """JSON that refuses duplicate keys and NaN/Infinity (canonical JSON cannot hold either)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise Refused("a JSON object repeats a key")
        return dict(pairs)

    def no_constant(name: str) -> None:
        raise Refused(f"JSON holds {name}")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(f"not valid JSON: {exc}") from None


def b64(text: Any, length: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise Refused(f"not base64: {text!r}") from None
    if length is not None and len(raw) != length:
        raise Refused(f"{len(raw)} bytes where {length} are due")
    return raw


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def canonical(value: Any) -> bytes:
    """Canonical JSON by the document's rules (a lone surrogate fails to encode: refused)."""
    return _encode(value).encode("utf-8")


def _encode(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in value) + '"'
    if isinstance(value, list):
        return "[" + ",".join(map(_encode, value)) + "]"
    if isinstance(value, dict):  # sorted(str) is code point order, the same as sorting UTF-8 bytes
        return "{" + ",".join(_encode(k) + ":" + _encode(value[k]) for k in sorted(value)) + "}"
    raise Refused(f"not a JSON value: {type(value).__name__}")


def _number(x: float) -> str:
    if not math.isfinite(x):
        raise Refused("NaN and infinities have no canonical form")
    # The shortest digits that read back as the same double (repr finds them; the layout is ours).
    _, digits, exponent = decimal.Decimal(repr(abs(x))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    e = len(digits) + int(exponent) - 1 if text != "0" else 0  # x = d.ddd * 10**e
    sign_text = "-" if math.copysign(1.0, x) < 0 else ""
    if -5 < e < 16:
        if e < 0:
            return f"{sign_text}0.{'0' * (-e - 1)}{text}"
        whole, fraction = text[: e + 1].ljust(e + 1, "0"), text[e + 1 :] or "0"
        return f"{sign_text}{whole}.{fraction}"
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{sign_text}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"


# ---------------------------------------------------------------- primitives
def hkdf_sha256(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def unwrap(kek: bytes, wrapped: bytes, what: str) -> bytes:
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        raise Refused(f"{what} does not unwrap") from None


def x25519(private: bytes, peer: bytes) -> bytes:
    try:
        return X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        raise Refused("an X25519 key is malformed or of small order") from None


def x25519_public(private: bytes) -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def ed25519_public(seed: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def ed25519_valid(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def open_sealed(key: bytes, context: bytes, sealed: bytes) -> bytes:
    """C2SP chunked encryption with AES-256-GCM: commitment first, then every chunk in order."""
    full, last = divmod(len(sealed) - HEADER, CHUNK + TAG)
    if len(sealed) < HEADER + TAG or last < TAG:
        raise Refused("sealed object is truncated or has trailing bytes")
    if full + 1 > MAX_CHUNKS:
        raise Refused("sealed object has more chunks than the format allows")
    info = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00" + sealed[:SALT] + context
    # HKDF-Expand-SHA-512 with the 32-byte key as PRK, written out (a strict library may refuse it).
    t1 = hmac.new(key, info + b"\x01", hashlib.sha512).digest()
    okm = t1 + hmac.new(key, t1 + info + b"\x02", hashlib.sha512).digest()
    aead, base_nonce, commitment = AESGCM(okm[:32]), int.from_bytes(okm[32:44], "big"), okm[44:76]
    if not hmac.compare_digest(commitment, sealed[SALT:HEADER]):
        raise Refused("key commitment does not match: wrong key or context, or an altered header")
    out = []
    for i in range(full + 1):
        start = HEADER + i * (CHUNK + TAG)
        chunk = sealed[start : start + CHUNK + TAG] if i < full else sealed[start:]
        try:
            out.append(aead.decrypt((base_nonce ^ i).to_bytes(12, "big"), chunk, None))
        except InvalidTag:
            raise Refused(f"chunk {i} fails authentication: altered, reordered or cut") from None
    return b"".join(out)


def argon2id(passphrase: bytes, kdf: dict[str, Any], test_kdf: bool) -> bytes:
    if kdf.get("algorithm", "argon2id") != "argon2id":
        raise Refused("the slot's KDF is not argon2id")
    values = [kdf.get(name) for name in ("memory_kib", "iterations", "lanes")]
    if any(not isinstance(v, int) or isinstance(v, bool) for v in values):
        raise Refused("the slot's KDF parameters are not integers")
    floor = TEST_FLOOR if test_kdf else FLOOR
    memory, iterations, lanes = values
    if any(v < lo or v > hi for v, lo, hi in zip(values, floor, CEILING, strict=True)) or memory < 8 * lanes:
        raise Refused(
            f"the slot's KDF parameters {values} are outside the floor {floor} and ceiling {CEILING}"
        )
    salt = b64(kdf.get("salt"))
    if not 8 <= len(salt) <= 64:
        raise Refused("the slot's salt is not 8 to 64 bytes")
    kdf_ = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory)
    return kdf_.derive(passphrase)


# ---------------------------------------------------------------- steps 2-4: passphrase -> slot, header check, role keys
def find_slot(header: dict[str, Any], user: str) -> dict[str, Any]:
    slots = [s for s in header["slots"] if s.get("user") == user]
    if len(slots) != 1:
        raise Refused("wrong passphrase or unknown user" if not slots else f"{user!r} has several slots")
    return slots[0]


def unlock_v2(header: dict[str, Any], user: str, passphrase: bytes, test_kdf: bool) -> dict[str, Any]:
    slot = find_slot(header, user)
    kek = argon2id(passphrase, slot["kdf"], test_kdf)
    carried = "wrapped_secrets" not in slot  # carried over from format 1, not yet adopted
    try:
        wrapped = b64(slot["wrapped_private"], 40) if carried else b64(slot["wrapped_secrets"], 104)
        secrets = aes_key_unwrap(kek, wrapped)
    except InvalidUnwrap:
        raise Refused("wrong passphrase or unknown user") from None
    if carried:  # its signing seed is sealed to it; the header's authority is taken as found
        ephemeral = b64(slot["signing_ephemeral"], 32)
        agreed = x25519(secrets, ephemeral) + ephemeral + b64(slot["public"], 32)
        seed = unwrap(
            hkdf_sha256(agreed, b"strongroom/v2 slot signing key"), b64(slot["sealed_signing"], 40), "seed"
        )
        secrets += seed + b64(header["authority"], 32)
    private, signing_seed, pinned = secrets[:32], secrets[32:64], secrets[64:]
    check_header(header, pinned)
    if x25519_public(private) != b64(slot["public"], 32):
        raise Refused("the slot's public key is not its private key's")
    if ed25519_public(signing_seed) != b64(slot["signing_public"], 32):
        raise Refused("the slot's signing key is not the one its certificate names")
    ephemeral = b64(slot["ephemeral"], 32)
    wrap = hkdf_sha256(
        x25519(private, ephemeral) + ephemeral + b64(slot["public"]), b"strongroom/v2 slot keys"
    )
    role = slot["role"]
    if role not in ROLE_KEYS:
        raise Refused(f"unknown role {role!r}")
    blob = unwrap(wrap, b64(slot["sealed_keys"], 32 * ROLE_KEYS[role] + 8), "the role's sealed keys")
    keys = [blob[i : i + 32] for i in range(0, len(blob), 32)]
    if role == "admin" and ed25519_public(keys[2]) != pinned:
        raise Refused("the authority key sealed to this slot is not the vault's")
    return {
        "role": role,
        "catalog_key": hkdf_sha256(keys[0], b"strongroom/v2 catalog key"),
        "data": keys[1] if len(keys) > 1 else None,
    }


def check_header(header: dict[str, Any], pinned: bytes) -> None:
    """The authority this slot pinned signed the header, and certified every slot."""
    if b64(header["authority"], 32) != pinned:
        raise Refused("the header names another authority than the one this slot pinned")
    view = {k: v for k, v in header.items() if k != "signature"}
    view["slots"] = [{k: s[k] for k in SIGNED_SLOT_FIELDS if k in s} for s in header["slots"]]
    if not ed25519_valid(pinned, b64(header["signature"], 64), b"strongroom header v2\n" + canonical(view)):
        raise Refused("the header's signature is not the authority's: slots, roles or policy were edited")
    for s in header["slots"]:
        text = (
            f"strongroom user certificate v1\nvault {header['vault_id']}\nuser {s['user']}\nrole {s['role']}\n"
            f"signing-key {s['signing_public']}\nslot-key {s['public']}\n"
        )
        if not ed25519_valid(pinned, b64(s["certificate"], 64), text.encode("utf-8")):
            raise Refused(f"the certificate of {s['user']!r} is not the authority's")


def unlock_v1(header: dict[str, Any], user: str, passphrase: bytes, test_kdf: bool) -> dict[str, Any]:
    """Format 1 (the appendix): one master key behind every slot, a MAC over the header."""
    slot = find_slot(header, user)
    try:
        private = aes_key_unwrap(
            argon2id(passphrase, slot["kdf"], test_kdf), b64(slot["wrapped_private"], 40)
        )
    except InvalidUnwrap:
        raise Refused("wrong passphrase or unknown user") from None
    ephemeral = b64(slot["ephemeral"], 32)
    wrap = hkdf_sha256(
        x25519(private, ephemeral) + ephemeral + b64(slot["public"]), b"strongroom/v1 slot master wrap"
    )
    master = unwrap(wrap, b64(slot["wrapped_master"], 40), "the master key")
    body = canonical({k: v for k, v in header.items() if k != "mac"})
    mac = hmac.new(hkdf_sha256(master, b"strongroom/v1 header mac"), body, "sha256").hexdigest()
    if not hmac.compare_digest(mac, str(header["mac"])):
        raise Refused("the header's MAC does not match: it was edited")
    return {
        "role": slot["role"],
        "catalog_key": hkdf_sha256(master, b"strongroom/v1 catalog key"),
        "data": master,
    }


# ---------------------------------------------------------------- step 5: the catalog
def read_catalog(root: Path, header: dict[str, Any], key: bytes) -> tuple[str, dict[str, Any]]:
    """catalog.sealed, unless an interrupted key or policy change left the one that the header names
    in catalog.next.sealed (this reader only reads: it renames nothing)."""
    context = f"strongroom/v1|vault={header['vault_id']}|kind=catalog".encode()

    def attempt(name: str) -> dict[str, Any] | None:
        try:
            catalog = strict_json(open_sealed(key, context, (root / name).read_bytes()))
        except (Refused, FileNotFoundError):
            return None
        if catalog.get("vault_id") != header["vault_id"]:
            return None
        if header["version"] >= 2 and catalog["policy"]["sha256"] != header["policy_sha256"]:
            return None
        return catalog

    pending = attempt("catalog.next.sealed") if (root / "catalog.next.sealed").exists() else None
    current = attempt("catalog.sealed")
    if current is None and pending is not None:
        return "catalog.next.sealed", pending
    if current is None:
        raise Refused("the catalog fails authentication, or its policy is not the one the header signs")
    return "catalog.sealed", current


# ---------------------------------------------------------------- steps 6-7: objects and records
def read_object(root: Path, vault_id: str, ref: dict[str, Any], key: bytes) -> bytes:
    object_id = ref["id"]
    if len(object_id) != 32 or object_id.strip("0123456789abcdef"):
        raise Refused(f"malformed object id {object_id!r}")
    try:
        sealed = (root / "objects" / object_id[:2] / object_id).read_bytes()
    except FileNotFoundError:
        raise Refused(f"object {object_id} is missing") from None
    context = f"strongroom/v1|vault={vault_id}|kind={ref['kind']}|{ref['ident']}|object={object_id}"
    try:
        plain = open_sealed(key, context.encode("utf-8"), sealed)
    except Refused as exc:
        raise Refused(f"object {object_id} ({ref['ident']}): {exc}") from None
    if (len(sealed), len(plain)) != (ref["sealed_size"], ref["size"]):
        raise Refused(f"object {object_id} has other sizes than the catalog records")
    return plain


def safetensors(blob: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, list[int], bytes]]]:
    """(metadata, {name: (dtype, shape, little-endian C-order bytes)}), with every offset checked."""
    n = int.from_bytes(blob[:8], "little") if len(blob) >= 8 else -1
    if not 0 <= n <= len(blob) - 8:
        raise Refused("not a safetensors file: bad header length")
    header, data = strict_json(blob[8 : 8 + n]), blob[8 + n :]
    metadata = header.pop("__metadata__", {})
    tensors, spans = {}, []
    for name, t in header.items():
        begin, end = t["data_offsets"]
        if end - begin != DTYPE_SIZE[t["dtype"]] * math.prod(t["shape"]):
            raise Refused(f"tensor {name!r} has the wrong byte length")
        spans.append((begin, end))
        tensors[name] = (t["dtype"], t["shape"], data[begin:end])
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise Refused("tensor data has a gap or an overlap")
        position = end
    if position != len(data):
        raise Refused("tensor data does not fill the file")
    return metadata, tensors


def tensor(tensors: dict[str, Any], name: str, dtype: str, shape: list[int | None]) -> bytes:
    if name not in tensors or tensors[name][0] != dtype or len(tensors[name][1]) != len(shape):
        raise Refused(f"shard tensor {name!r} is missing or not {dtype} of rank {len(shape)}")
    if any(want is not None and got != want for got, want in zip(tensors[name][1], shape, strict=True)):
        raise Refused(f"shard tensor {name!r} has shape {tensors[name][1]}, not {shape}")
    return tensors[name][2]


def int64s(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 8], "little", signed=True) for i in range(0, len(data), 8)]


def read_version(
    root: Path, vault_id: str, name: str, version: dict[str, Any], data_key: bytes
) -> dict[str, Any]:
    """Every shard in order, the records joined, and the content digest re-derived."""
    key = unwrap(data_key, b64(version["wrapped_key"], 40), "the version's data key")
    kind, classes, shape = version["kind"], version["classes"], version["shape"]
    labels, pixels, records, position = b"", [], [], 0
    for i, ref in enumerate(version["shards"]):
        ident = f"dataset={name}/version={version['version']}/shard={i}"
        if (
            ref["kind"] != "shard"
            or ref["ident"] != ident
            or ref["start"] != position
            or ref["stop"] <= position
        ):
            raise Refused(f"shard {i} of {name} is misnamed or out of order")
        n, position = ref["stop"] - ref["start"], ref["stop"]
        _, tensors = safetensors(read_object(root, vault_id, ref, key))
        labels += tensor(tensors, "labels", "I64", [n])
        if kind == "image":
            pixels.append(tensor(tensors, "images", "U8", [n, *shape]))
        else:
            utf8 = tensor(tensors, "utf8", "U8", [None])
            offsets = int64s(tensor(tensors, "offsets", "I64", [n + 1]))
            if offsets[0] != 0 or offsets[-1] != len(utf8) or sorted(offsets) != offsets:
                raise Refused(f"shard {i} has bad offsets")
            records += [utf8[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]
    if position != version["samples"]:
        raise Refused("the shards do not hold every record")
    names = [classes[k] if 0 <= k < len(classes) else None for k in int64s(labels)]
    if None in names:
        raise Refused("a label is outside the classes")
    digest = hashlib.sha256(canonical({"classes": classes, "kind": kind}) + labels)
    if kind == "image":
        digest.update(canonical([position, *shape]))
        for part in pixels:
            digest.update(part)
    else:
        for record in records:
            digest.update(len(record).to_bytes(8, "little") + record)
    result = {"version": version["version"], "kind": kind, "samples": position, "labels": names}
    result["shards"] = [[ref["start"], ref["stop"]] for ref in version["shards"]]
    result["objects"] = [ref["id"] for ref in version["shards"]]
    result["digest"] = "sha256:" + digest.hexdigest()
    if result["digest"] != version["digest"]:
        raise Refused(f"records do not match the digest the catalog records ({version['digest']})")
    if kind == "image":
        result["images_sha256"] = hashlib.sha256(b"".join(pixels)).hexdigest()
    else:
        try:
            result["texts"] = [r.decode("utf-8") for r in records]
        except UnicodeDecodeError:
            raise Refused("a text record is not UTF-8") from None
    return result


def read_model(
    root: Path, vault_id: str, model_id: str, model: dict[str, Any], data_key: bytes
) -> dict[str, Any]:
    parts = {}
    for part, ref in model["objects"].items():
        if ref["kind"] != "model" or ref["ident"] != f"model={model_id}/{part}":
            raise Refused(f"model object {part} is not named for its model")
        key = unwrap(data_key, b64(ref["wrapped_key"], 40), f"the key of {model_id}/{part}")
        parts[part] = read_object(root, vault_id, ref, key)
    metadata, tensors = safetensors(parts["model.safetensors"])
    card = strict_json(parts["card.json"])
    if card["model"]["id"] != model_id:
        raise Refused("the card names another model")
    return {
        "model": model["model"],
        "dataset": model["dataset"],
        "parts": {part: len(data) for part, data in sorted(parts.items())},
        "weights_sha256": hashlib.sha256(parts["model.safetensors"]).hexdigest(),
        "tensors": {name: {"dtype": t[0], "shape": t[1]} for name, t in sorted(tensors.items())},
        "metadata": metadata,
        "card": card,
    }


def read_vault(root: Path, user: str, passphrase: bytes, *, test_kdf: bool = False) -> dict[str, Any]:
    header = strict_json((root / "vault.json").read_bytes())
    if header.get("format") != "strongroom-vault" or header.get("version") not in (1, 2):
        raise Refused("not a Strongroom vault of format 1 or 2")
    unlock = unlock_v2 if header["version"] == 2 else unlock_v1
    keys = unlock(header, user, passphrase, test_kdf)
    source, catalog = read_catalog(root, header, keys["catalog_key"])
    out: dict[str, Any] = {"format": header["version"], "vault_id": header["vault_id"], "user": user}
    out |= {"role": keys["role"], "catalog": source, "datasets": {}, "models": {}}
    vault_id, data = header["vault_id"], keys["data"]
    for name, entry in sorted(catalog["datasets"].items()):
        versions = [v["version"] for v in entry["versions"]]
        if data is not None:  # an auditor holds no data key: metadata only
            versions = [read_version(root, vault_id, name, v, data) for v in entry["versions"]]
        out["datasets"][name] = {"sensitivity": entry["sensitivity"], "versions": versions}
    for model_id, model in sorted(catalog["models"].items()):
        out["models"][model_id] = (
            model["model"] if data is None else read_model(root, vault_id, model_id, model, data)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", type=Path)
    parser.add_argument("--user", default="admin")
    parser.add_argument(
        "--passphrase-file", required=True, help='a file whose first line is the passphrase; "-": stdin'
    )
    parser.add_argument(
        "--test-kdf", action="store_true", help="accept Strongroom's test-only Argon2id parameters"
    )
    args = parser.parse_args(argv)
    source = sys.stdin if args.passphrase_file == "-" else open(args.passphrase_file, encoding="utf-8")
    with source:
        passphrase = source.readline().rstrip("\n").encode("utf-8")
    try:
        result = read_vault(args.vault, args.user, passphrase, test_kdf=args.test_kdf)
    except (Refused, KeyError, TypeError, ValueError, OSError) as exc:
        print(
            f"refused: {exc if isinstance(exc, Refused) else f'{type(exc).__name__}: {exc}'}", file=sys.stderr
        )
        return 1
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
