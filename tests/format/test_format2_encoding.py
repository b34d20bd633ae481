"""Format 2: blobs without a clear header, sizes padded into Padmé buckets, both formats read."""

from __future__ import annotations

import os
import struct

import pytest

from strongroom.errors import IntegrityError
from strongroom.repository import envelope as envelope_module
from strongroom.repository.blobid import blob_id
from strongroom.repository.envelope import (
    KIND_DATA,
    KIND_DOCUMENT,
    KIND_INDEX,
    KIND_PACK_TRAILER,
    KIND_TREE,
    Envelope,
    Scratch,
    max_plaintext,
    max_sealed,
    padded_size,
    padme,
)
from strongroom.repository.pack import PackWriter, parse_pack, read_trailer, pack_name
from strongroom.storage import MemoryStore

KEY, KEY_ID = os.urandom(32), b"kid2"
ID_KEY = bytes(32)


@pytest.fixture
def v1():
    return Envelope(KEY, KEY_ID)


@pytest.fixture
def v2(v1):
    return v1.writing(2)


class TestPadme:
    def test_buckets(self):
        """Padmé keeps at most bitlength(E)+1 significant bits and costs less than 2**-bitlength(E)."""
        for length in list(range(2, 5000)) + [10**5 + 7, 700_001, 1 << 20, (1 << 20) + 1, 4_194_303, 64 << 20]:
            size = padme(length)
            exponent = length.bit_length() - 1
            assert size >= length
            assert size >> (exponent - exponent.bit_length()) << (exponent - exponent.bit_length()) == size
            assert (size - length) / length < 2 ** -exponent.bit_length()
        assert [padme(n) for n in (1_000_000, 1_010_000, 1_015_807)] == [1_015_808] * 3

    def test_floor_and_limit(self):
        """Small objects take the kind's floor; padding never passes the kind's limit."""
        assert padded_size(KIND_DATA, 6) == 128 and padded_size(KIND_INDEX, 30) == 4096
        assert padded_size(KIND_DOCUMENT, 30) == 512
        assert padded_size(KIND_PACK_TRAILER, 5 + 45 * 8) == 4096  # a pack of 8 blobs: count hidden
        top = max_plaintext(KIND_DATA) + 5
        assert padded_size(KIND_DATA, top) == top == max_sealed(KIND_DATA) - 38
        assert padme((1 << 26) + 2) > top and padded_size(KIND_DATA, (1 << 26) + 2) == top


class TestBlobs:
    def test_no_clear_header(self, v2):
        """A format-2 blob starts with its nonce: no magic, kind, compression or key id in clear."""
        data = b"folder listing " * 300
        sealed = bytes(v2.seal(KIND_TREE, b"i" * 32, data))
        assert sealed[:3] != b"SRE" and KEY_ID not in sealed[:22]
        assert len(sealed) == 128 + 28  # compressed, then padded to the floor
        assert v2.open(sealed, b"i" * 32, kind=KIND_TREE) == data

    def test_sizes_and_kinds_do_not_show(self, v2):
        """Blobs of different exact sizes, kinds and compression seal to the same length."""
        random_data = [os.urandom(n) for n in (1_000_000, 1_005_000, 1_015_000)]
        lengths = {len(v2.seal(kind, b"n", d)) for d in random_data for kind in (KIND_DATA, KIND_TREE)}
        squeezed = os.urandom(1_000_000 - 8) + bytes(8)  # stored as is, like the others
        lengths.add(len(v2.seal(KIND_DATA, b"n", squeezed)))
        assert len(lengths) == 1

    def test_kind_is_authenticated(self, v2):
        """A blob opened as the other kind fails authentication (the kind is in the associated data)."""
        sealed = v2.seal(KIND_DATA, b"n", b"content")
        with pytest.raises(IntegrityError, match="authentication failed"):
            v2.open(sealed, b"n", kind=KIND_TREE)
        with pytest.raises(IntegrityError, match="authentication failed"):
            v2.open(sealed, b"m", kind=KIND_DATA)
        with pytest.raises(IntegrityError, match="magic"):
            v2.open(sealed, b"n")  # a headerless blob needs its kind

    def test_nonce_never_looks_like_a_header(self, v2, monkeypatch):
        """A nonce starting with b"SRE" is drawn again (a reader would take it for a header)."""
        draws = [b"SRE" + bytes(9), b"SRA" + bytes(9)]
        real = envelope_module._nonce
        monkeypatch.setattr(envelope_module, "_nonce", lambda: draws.pop(0) if draws else real())
        sealed = v2.seal(KIND_DATA, b"n", b"x")
        assert sealed[:12] == b"SRA" + bytes(9) and not draws
        assert v2.open(sealed, b"n", kind=KIND_DATA) == b"x"

    def test_nonces_are_drawn_in_bulk_and_never_repeat(self, monkeypatch):
        """Nonces come from os.urandom, NONCES_PER_DRAW at a time per thread, each once."""
        calls = []
        real = os.urandom
        monkeypatch.setattr(os, "urandom", lambda n: calls.append(n) or real(n))
        envelope_module._forget_nonces()
        per_draw = envelope_module.NONCES_PER_DRAW
        nonces = [envelope_module._nonce() for _ in range(3 * per_draw)]
        assert len(set(nonces)) == len(nonces)
        assert {len(n) for n in nonces} == {envelope_module.NONCE_SIZE}
        assert calls == [envelope_module.NONCE_SIZE * per_draw] * 3

    def test_a_forked_child_draws_its_own_nonces(self):
        """A child forked while its parent holds drawn nonces never uses one of them."""
        envelope_module._nonce()  # the parent now holds NONCES_PER_DRAW - 1 drawn nonces
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its next nonce, to the parent
            try:
                os.write(write_end, envelope_module._nonce())
            finally:
                os._exit(0)
        os.close(write_end)
        child = os.read(read_end, 64)
        os.close(read_end)
        os.waitpid(pid, 0)
        assert len(child) == envelope_module.NONCE_SIZE
        assert child != envelope_module._nonce()

    def test_compressed_and_scratch(self, v2):
        """Compressible blobs round-trip, with and without a scratch buffer."""
        text = b"compressible " * 100_000
        sealed = v2.seal(KIND_DATA, b"n", text)
        assert len(sealed) < len(text) // 10
        assert v2.open(sealed, b"n", kind=KIND_DATA, scratch=Scratch()) == text
        plain = os.urandom(70_000)
        view = v2.open(v2.seal(KIND_DATA, b"n", plain), b"n", kind=KIND_DATA, scratch=Scratch())
        assert isinstance(view, memoryview) and bytes(view) == plain

    def test_both_formats_read_by_either(self, v1, v2):
        """An envelope reads what the other format wrote, whatever it writes."""
        for writer in (v1, v2):
            for reader in (v1, v2):
                for kind in (KIND_DATA, KIND_TREE, KIND_DOCUMENT, KIND_INDEX, KIND_PACK_TRAILER):
                    assert reader.open(writer.seal(kind, b"n", b"abc" * 50), b"n", kind=kind) == b"abc" * 50

    def test_seal_into_bound(self, v2):
        """seal_into fits in sealed_size_bound and refuses a smaller buffer."""
        data = os.urandom(300_000)
        need = v2.sealed_size_bound(KIND_DATA, len(data))
        view = v2.seal_into(bytearray(need), KIND_DATA, b"n", data)
        assert view.nbytes == need and v2.open(view, b"n", kind=KIND_DATA) == data
        with pytest.raises(ValueError):
            v2.seal_into(bytearray(need - 1), KIND_DATA, b"n", data)


class TestObjects:
    def test_header_v2_padded(self, v2):
        """Documents keep a header (version 2, compression byte 0) and are padded to the floor."""
        sealed = bytes(v2.seal(KIND_DOCUMENT, b"points/a/b", b'{"point_id": "b"}'))
        assert sealed[:6] == b"SRE" + bytes([2, KIND_DOCUMENT, 0]) and sealed[6:10] == KEY_ID
        assert len(sealed) == 512 + 38

    def test_header_fields_are_authenticated(self, v2):
        """Changing the version, kind or compression byte of a version-2 header is refused."""
        sealed = v2.seal(KIND_DOCUMENT, b"n", b"{}")
        for offset, value in ((3, 1), (4, KIND_INDEX), (5, 1)):
            bad = bytearray(sealed)
            bad[offset] = value
            with pytest.raises(IntegrityError):
                v2.open(bad, b"n")

    def test_frame_cannot_claim_more_than_it_holds(self, v2):
        """An authentic frame whose body length passes its end is damage, not a slice past it."""
        nonce = bytes(12)
        header = b"SRE" + bytes([2, KIND_DOCUMENT, 0]) + KEY_ID + nonce
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        inner = struct.pack("<BI", 0, 1000) + b"x" * 20
        sealed = header + AESGCM(KEY).encrypt(nonce, inner, header + b"n")
        with pytest.raises(IntegrityError, match="beyond"):
            v2.open(sealed, b"n")


class TestPacks:
    def _pack(self, env: Envelope, blobs):
        writer = PackWriter(env)
        for kind, data in blobs:
            writer.add(blob_id(ID_KEY, data), kind, env.seal(kind, blob_id(ID_KEY, data), data), len(data))
        return writer, *writer.finish()

    def test_format2_pack(self, v2):
        """A format-2 pack shows no blob header at any blob's offset; its trailer is padded."""
        blobs = [(KIND_DATA, os.urandom(5000)), (KIND_TREE, b'{"v":1}' * 40), (KIND_DATA, b"z" * 90_000)]
        writer, data, entries = self._pack(v2, blobs)
        assert all(data[e.offset:e.offset + 3] != b"SRE" for e in entries)
        trailer_len = struct.unpack_from("<I", data, len(data) - 8)[0]
        assert trailer_len == 4096 + 38  # three entries, padded to the trailer floor
        assert parse_pack(data, writer.pack_id, v2) == entries
        store = MemoryStore()
        store.put(pack_name(writer.pack_id), data)
        assert read_trailer(store, writer.pack_id, v2) == entries

    def test_mixed_pack(self, v1, v2):
        """Blobs sealed in format 1 copied into a format-2 pack (as prune and repair do) still open."""
        old = [(KIND_DATA, os.urandom(700)), (KIND_TREE, b"{}" * 30)]
        writer = PackWriter(v2)
        for kind, data in old + [(KIND_DATA, b"new blob" * 9)]:
            sealer = v1 if len(writer._entries) < 2 else v2
            writer.add(blob_id(ID_KEY, data), kind, sealer.seal(kind, blob_id(ID_KEY, data), data), len(data))
        data, entries = writer.finish()
        for entry, (kind, plain) in zip(parse_pack(data, writer.pack_id, v1), old + [(KIND_DATA, b"new blob" * 9)]):
            sealed = data[entry.offset:entry.offset + entry.length]
            assert v1.open(sealed, entry.blob_id, kind=entry.kind) == plain
