"""C2SP signed notes and tlog checkpoints: the Go reference note byte for byte, and tampering."""

from __future__ import annotations

import base64

import pytest

from vault.audit import checkpoint as ckpt
from vault.crypto.signing import SigningKey
from vault.errors import IntegrityError

# golang.org/x/mod/sumdb/note reference example (note_test.go): Ed25519 is deterministic, so
# signing the same text with the same key must give the published signature line exactly.
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIGNATURE_LINE = "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ORIGIN = "strongroom.local/vault/0123456789abcdef"
ROOT = bytes(range(32))


def go_key() -> SigningKey:
    blob = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])  # the base64 part may hold "+"
    assert blob[0] == 1
    return SigningKey.from_raw(blob[1:])


def test_go_reference_note_byte_for_byte() -> None:
    key = go_key()
    assert ckpt.verifier_key("PeterNeumann", key.public_raw()) == GO_VERIFIER_KEY
    note = ckpt.sign_note(key, "PeterNeumann", GO_TEXT)
    assert note == GO_TEXT + "\n" + GO_SIGNATURE_LINE
    assert ckpt.verify_note(note, key.public_raw()) == GO_TEXT
    with pytest.raises(IntegrityError):
        ckpt.verify_note(note.replace("cryptography", "cryptographY"), key.public_raw())


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    key = go_key()
    assert ckpt.key_id("PeterNeumann", key.public_raw()).hex() == "c74f20a3"


def test_checkpoint_layout_and_round_trip() -> None:
    key = SigningKey.generate()
    text = ckpt.sign_checkpoint(key, ORIGIN, 42, ROOT)
    lines = text.split("\n")
    assert lines[:3] == [ORIGIN, "42", base64.b64encode(ROOT).decode()]
    assert lines[3] == "" and lines[4].startswith("\u2014 " + ORIGIN + " ") and lines[5] == ""
    blob = base64.b64decode(lines[4].split(" ")[2])
    assert len(blob) == 4 + 64 and blob[:4] == ckpt.key_id(ORIGIN, key.public_raw())
    for public in (key.public_raw(), key.public_pem()):
        cp = ckpt.verify_checkpoint(text, public)
        assert (cp.origin, cp.size, cp.root) == (ORIGIN, 42, ROOT)
        assert cp.body == ckpt.format_checkpoint(ORIGIN, 42, ROOT)
    assert ckpt.parse_checkpoint(text.encode()).to_json()["size"] == 42


def test_other_signatures_are_ignored_but_one_by_the_key_is_required() -> None:
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    text = ckpt.sign_checkpoint(ours, ORIGIN, 7, ROOT)
    cosigned = (
        text + ckpt.sign_checkpoint(theirs, ORIGIN, 7, ROOT, key_name="witness.example").split("\n\n")[1]
    )
    assert ckpt.verify_checkpoint(cosigned, ours.public_raw()).size == 7
    assert ckpt.verify_checkpoint(cosigned, theirs.public_raw()).size == 7
    with pytest.raises(IntegrityError, match="no signature by this public key"):
        ckpt.verify_checkpoint(text, theirs.public_raw())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("\n42\n", "\n43\n"),
        lambda t: t.replace(ORIGIN, ORIGIN + "x", 1),
        lambda t: t.replace(base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[::-1]).decode()),
        # a character inside the signature (the last one before "=" also carries padding bits)
        lambda t: t[:-20] + ("A" if t[-20] != "A" else "B") + t[-19:],
    ],
    ids=["size", "origin", "root", "signature"],
)
def test_tampered_checkpoint_fails(mutate) -> None:
    key = SigningKey.generate()
    text = ckpt.sign_checkpoint(key, ORIGIN, 42, ROOT)
    with pytest.raises(IntegrityError):
        ckpt.verify_checkpoint(mutate(text), key.public_raw())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a checkpoint",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n",  # unsigned
        f"{ORIGIN}\n042\n{base64.b64encode(ROOT).decode()}\n\n\u2014 k AAAAAAAA\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n\n\u2014 k AAAAAAAA\n",
        f"{ORIGIN}\n4\n{base64.b64encode(ROOT[:31]).decode()}\n\n\u2014 k AAAAAAAA\n",
        f"{ORIGIN}\n4\n!!!!\n\n\u2014 k AAAAAAAA\n",
        f"\n4\n{base64.b64encode(ROOT).decode()}\n\n\u2014 k AAAAAAAA\n",
        f"{ORIGIN}\n4\n{base64.b64encode(ROOT).decode()}\n\n- k AAAAAAAA\n",
        f"{ORIGIN}\n4\n{base64.b64encode(ROOT).decode()}\n\n\u2014 k AAAAAAAA",
        f"{ORIGIN}\x01\n4\n{base64.b64encode(ROOT).decode()}\n\n\u2014 k AAAAAAAA\n",
        b"\xff\xfe\n4\n\n\xe2\x80\x94 k AAAAAAAA\n",
    ],
)
def test_malformed_checkpoints_are_integrity_errors(text: str | bytes) -> None:
    with pytest.raises(IntegrityError, match="not a valid signed checkpoint"):
        ckpt.parse_checkpoint(text)


def test_bad_public_key_is_an_integrity_error() -> None:
    text = ckpt.sign_checkpoint(SigningKey.generate(), ORIGIN, 1, ROOT)
    with pytest.raises(IntegrityError, match="not an Ed25519 public key"):
        ckpt.verify_checkpoint(text, b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_formatting_refuses_what_cannot_be_parsed_back() -> None:
    with pytest.raises(ValueError):
        ckpt.format_checkpoint("two\nlines", 1, ROOT)
    with pytest.raises(ValueError):
        ckpt.format_checkpoint(ORIGIN, 1, ROOT[:5])
    with pytest.raises(ValueError):
        ckpt.sign_checkpoint(SigningKey.generate(), ORIGIN, 1, ROOT, key_name="has space")
    with pytest.raises(ValueError):
        ckpt.check_key_name("a+b")
