"""The envelope: sealing, opening, compression choice and tamper detection."""

from __future__ import annotations

import os
import struct
import threading

import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import IntegrityError
from strongroom.repository.envelope import (
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    KIND_DATA,
    KIND_DOCUMENT,
    KIND_INDEX,
    KIND_KEY_CHECK,
    KIND_PACK_TRAILER,
    KIND_TREE,
    KINDS,
    Envelope,
    max_plaintext,
)

KEY = bytes(range(32))
KEY_ID = b"\x01\x02\x03\x04"
TEXT = b"The quick brown fox jumps over the lazy dog. " * 2000


@pytest.fixture
def env():
    return Envelope(KEY, KEY_ID)


def compression_of(sealed) -> int:
    return sealed[5]


class TestEnvelope:
    def test_header_layout(self, env):
        """The clear header is magic, version, kind, compression, key id and nonce: 22 bytes."""
        sealed = env.seal(KIND_TREE, b"name", b"x" * 10, compress=False)
        assert Envelope.HEADER_SIZE == 22
        assert sealed[:3] == b"SRE" and sealed[3] == 1 and sealed[4] == KIND_TREE
        assert sealed[6:10] == KEY_ID
        assert len(sealed) == 22 + 10 + 16

    @pytest.mark.parametrize("kind", sorted(KINDS))
    def test_round_trip_every_kind(self, env, kind):
        """Every kind opens back to its plaintext, with and without naming the kind."""
        sealed = env.seal(kind, b"obj", TEXT)
        assert env.open(sealed, b"obj", kind=kind) == TEXT
        assert env.open(bytes(sealed), b"obj") == TEXT

    def test_compressible_data_is_compressed(self, env):
        """Text is stored zstd-compressed and much smaller."""
        sealed = env.seal(KIND_DATA, b"n", TEXT)
        assert compression_of(sealed) == COMPRESSION_ZSTD
        assert len(sealed) < len(TEXT) // 10

    @pytest.mark.parametrize("size", [100, 100_000, 3 * 1024 * 1024])
    def test_incompressible_data_is_stored_as_is(self, env, size):
        """Random data (small, medium, and large enough to be sampled) is not compressed."""
        data = os.urandom(size)
        sealed = env.seal(KIND_DATA, b"n", data)
        assert compression_of(sealed) == COMPRESSION_NONE
        assert len(sealed) == size + Envelope.OVERHEAD
        assert env.open(sealed, b"n") == data

    def test_compress_false_stores_as_is(self, env):
        """compress=False stores compressible data uncompressed."""
        sealed = env.seal(KIND_DATA, b"n", TEXT, compress=False)
        assert compression_of(sealed) == COMPRESSION_NONE
        assert env.open(sealed, b"n") == TEXT

    def test_large_compressible_data_passes_the_sample(self, env):
        """A large input whose samples compress is compressed whole."""
        data = TEXT * 40  # about 3.6 MB
        sealed = env.seal(KIND_DATA, b"n", data)
        assert compression_of(sealed) == COMPRESSION_ZSTD
        assert env.open(sealed, b"n") == data

    def test_compression_level_is_honoured(self, env):
        """A higher level gives output no larger than level 1 on text."""
        data = os.urandom(64).hex().encode() * 5000
        low = env.seal(KIND_DATA, b"n", data, level=1)
        high = env.seal(KIND_DATA, b"n", data, level=19)
        assert len(high) <= len(low)
        assert env.open(high, b"n") == data

    def test_memoryview_and_empty_input(self, env):
        """Memoryviews are accepted, and an empty plaintext round-trips."""
        assert env.open(env.seal(KIND_DATA, b"a", memoryview(TEXT)[5:500]), b"a") == TEXT[5:500]
        assert env.open(env.seal(KIND_DATA, b"a", b""), b"a") == b""

    def test_nonces_are_fresh(self, env):
        """Sealing the same plaintext twice gives different ciphertexts."""
        assert env.seal(KIND_DATA, b"n", b"same") != env.seal(KIND_DATA, b"n", b"same")

    def test_every_flipped_bit_is_detected(self, env):
        """Flipping any single bit of a sealed object (header, ciphertext, tag) fails to open."""
        sealed = bytes(env.seal(KIND_DOCUMENT, b"doc", b'{"hello": "world"}' * 3))
        for bit in range(len(sealed) * 8):
            damaged = bytearray(sealed)
            damaged[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(IntegrityError):
                env.open(damaged, b"doc", kind=KIND_DOCUMENT)

    def test_wrong_name_is_detected(self, env):
        """A ciphertext moved to another name fails authentication."""
        sealed = env.seal(KIND_DOCUMENT, b"points/a", b"{}")
        with pytest.raises(IntegrityError, match="authentication failed") as info:
            env.open(sealed, b"points/b")
        assert info.value.fields["what"] == "points/b"

    def test_wrong_kind_is_detected(self, env):
        """Expecting another kind fails, and so does rewriting the kind byte."""
        sealed = env.seal(KIND_TREE, b"n", b"tree")
        with pytest.raises(IntegrityError, match="kind"):
            env.open(sealed, b"n", kind=KIND_DATA)
        relabelled = bytearray(sealed)
        relabelled[4] = KIND_DATA
        with pytest.raises(IntegrityError, match="authentication failed"):
            env.open(relabelled, b"n", kind=KIND_DATA)

    def test_wrong_key_is_detected(self, env):
        """Another data key fails, whether its key id differs or not."""
        sealed = env.seal(KIND_DATA, b"n", b"secret")
        with pytest.raises(IntegrityError, match="another key"):
            Envelope(os.urandom(32), b"\x09\x09\x09\x09").open(sealed, b"n")
        with pytest.raises(IntegrityError, match="authentication failed"):
            Envelope(os.urandom(32), KEY_ID).open(sealed, b"n")

    def test_binary_names_are_shown_as_hex(self, env):
        """Errors about blobs name them by the hex of their raw id."""
        blob = bytes(range(32))
        sealed = env.seal(KIND_DATA, blob, b"x")
        with pytest.raises(IntegrityError) as info:
            env.open(sealed[:-1], blob)
        assert info.value.fields["what"] == blob.hex()

    def test_truncated_and_foreign_input(self, env):
        """Short input and input without the magic are refused."""
        with pytest.raises(IntegrityError, match="too short"):
            env.open(b"SRE", b"n")
        with pytest.raises(IntegrityError, match="magic"):
            env.open(b"XYZ" + bytes(60), b"n")

    def test_unsupported_version(self, env):
        """A future envelope version is refused before any decryption."""
        sealed = bytearray(env.seal(KIND_DATA, b"n", b"x"))
        sealed[3] = 3
        with pytest.raises(IntegrityError, match="version 3"):
            env.open(sealed, b"n")

    def test_oversized_frame_is_refused_without_allocating(self):
        """An authentic zstd frame claiming more than the kind's limit is refused."""
        # Forge an authentic object whose zstd frame header claims 1 TiB of output:
        # magic, descriptor 0xE0 (single segment, 8-byte content size), size, a raw block.
        frame = b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", 1 << 40) + b"\x01\x00\x00"
        assert zstandard.frame_content_size(frame) == 1 << 40
        nonce = bytes(12)
        header = b"SRE" + bytes([1, KIND_DATA, 1]) + KEY_ID + nonce
        sealed = header + AESGCM(KEY).encrypt(nonce, frame, header + b"n")
        with pytest.raises(IntegrityError, match="claims"):
            Envelope(KEY, KEY_ID).open(sealed, b"n")

    def test_authentic_garbage_frame_is_an_integrity_error(self):
        """An authentic but undecodable compressed body raises IntegrityError, not ZstdError."""
        good = zstandard.ZstdCompressor().compress(TEXT)
        for body in (good[:-5], good + b"extra", b"\x28\xb5\x2f\xfd" + bytes(20), b"junk"):
            nonce = os.urandom(12)
            header = b"SRE" + bytes([1, KIND_DATA, 1]) + KEY_ID + nonce
            sealed = header + AESGCM(KEY).encrypt(nonce, body, header + b"n")
            with pytest.raises(IntegrityError):
                Envelope(KEY, KEY_ID).open(sealed, b"n")

    def test_limits(self, env):
        """Documents and indexes may be larger than blobs; seal refuses more than the limit."""
        assert max_plaintext(KIND_DOCUMENT) == max_plaintext(KIND_INDEX) == 256 * 1024 * 1024
        assert max_plaintext(KIND_DATA) == 64 * 1024 * 1024
        with pytest.raises(ValueError):
            env.seal(KIND_KEY_CHECK, b"n", bytes(64 * 1024 * 1024 + 1), compress=False)

    def test_bad_construction_and_kind(self, env):
        """Keys of the wrong size and unknown kinds are refused."""
        with pytest.raises(ValueError):
            Envelope(bytes(16), KEY_ID)
        with pytest.raises(ValueError):
            Envelope(KEY, b"\x00")
        with pytest.raises(ValueError):
            env.seal(99, b"n", b"x")
        assert KIND_PACK_TRAILER in KINDS

    def test_threads_share_one_envelope(self, env):
        """Sealing and opening from several threads at once gives correct results."""
        errors: list[BaseException] = []

        def work(seed: int) -> None:
            try:
                for i in range(30):
                    data = (f"{seed}-{i} " * (100 * i + 1)).encode()
                    name = f"{seed}/{i}".encode()
                    assert env.open(env.seal(KIND_DATA, name, data), name) == data
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


class TestEnvelopeProperties:
    @settings(max_examples=150, deadline=None)
    @given(
        kind=st.sampled_from(sorted(KINDS)),
        name=st.binary(min_size=0, max_size=64),
        data=st.one_of(st.binary(max_size=5000), st.text(max_size=3000).map(str.encode)),
        compress=st.booleans(),
    )
    def test_round_trip(self, kind, name, data, compress):
        """Whatever is sealed opens back to the same bytes under the same name and kind."""
        env = Envelope(KEY, KEY_ID)
        assert env.open(env.seal(kind, name, data, compress=compress), name, kind=kind) == data

    @settings(max_examples=300, deadline=None)
    @given(garbage=st.binary(max_size=400), keep_header=st.booleans())
    def test_garbage_only_raises_integrity_error(self, garbage, keep_header):
        """Random bytes, with or without a valid-looking header, only ever raise IntegrityError."""
        env = Envelope(KEY, KEY_ID)
        if keep_header:
            garbage = b"SRE\x01\x01\x01" + KEY_ID + garbage
        with pytest.raises(IntegrityError):
            env.open(garbage, b"n")
