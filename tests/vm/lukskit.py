"""LUKS test volumes filled without device-mapper.

``cryptsetup luksFormat --volume-key-file`` writes a real LUKS1/LUKS2 header around a
volume key the test chose; the payload (an ext4 or XFS image) is then encrypted here with
that key by the ``cryptography`` package, as dm-crypt would write it (``aes-xts-plain64``:
the sector number as XTS tweak; ``aes-cbc-essiv:sha256``: the sector number encrypted
with SHA-256 of the key as CBC IV; sectors larger than 512 bytes count the IV in their own
units, as cryptsetup's ``iv_large_sectors``).  ``cryptsetup open`` needs device-mapper,
which containers lack; this needs nothing but the image file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from strongroom.testing import unavailable
from vmkit import MIB, run


def need_cryptsetup() -> None:
    if shutil.which("cryptsetup") is None:
        unavailable("cryptsetup is not installed (Debian package cryptsetup-bin; scripts/setup.sh installs it)")


def _encrypt(data: bytes, key: bytes, cipher: str, sector: int) -> bytes:
    out = bytearray()
    essiv = Cipher(algorithms.AES(hashlib.sha256(key).digest()), modes.ECB()).encryptor()
    for i in range(0, len(data), sector):
        number = (i // sector).to_bytes(16, "little")
        if cipher == "aes-xts-plain64":
            mode = modes.XTS(number)
        else:
            mode = modes.CBC(essiv.update(number))
        e = Cipher(algorithms.AES(key), mode).encryptor()
        out += e.update(data[i:i + sector]) + e.finalize()
    return bytes(out)


def luks_volume(path, payload: bytes, kind: str = "luks2", *, passphrase: bytes = b"pw",
                cipher: str = "aes-xts-plain64", pbkdf: str = "pbkdf2", sector: int = 512,
                key_file=None) -> None:
    """A LUKS volume at ``path`` whose decrypted content is ``payload`` (a whole number of
    sectors).  The key slot opens with ``passphrase``, or with ``key_file``'s bytes."""
    need_cryptsetup()
    key = os.urandom(64 if "xts" in cipher else 32)
    vk = f"{path}.vk"
    with open(vk, "wb") as fh:
        fh.write(key)
    with open(path, "wb") as fh:
        fh.truncate(16 * MIB + len(payload))
    argv = ["cryptsetup", "luksFormat", "-q", "--type", kind, "--cipher", cipher, "--key-size", str(len(key) * 8),
            "--volume-key-file", vk]
    if pbkdf.startswith("argon2"):
        argv += ["--pbkdf", pbkdf, "--pbkdf-memory", "8192", "--pbkdf-parallel", "1", "--pbkdf-force-iterations", "4"]
    else:
        argv += ["--pbkdf-force-iterations", "1000"] + (["--pbkdf", "pbkdf2"] if kind == "luks2" else [])
    if kind == "luks2":
        argv += ["--sector-size", str(sector)]
    argv += [str(path), str(key_file) if key_file else "-"]
    run(*argv, input=None if key_file else passphrase)
    os.unlink(vk)
    dump = subprocess.run(["cryptsetup", "luksDump", str(path)], check=True, capture_output=True, text=True).stdout
    if kind == "luks1":
        offset = int(re.search(r"Payload offset:\s*(\d+)", dump).group(1)) * 512
    else:
        offset = int(re.search(r"Data segments:\s*\n\s*0: crypt\s*\n\s*offset: (\d+) \[bytes\]", dump).group(1))
    with open(path, "r+b") as fh:
        fh.truncate(offset + len(payload))
        fh.seek(offset)
        fh.write(_encrypt(payload, key, cipher, sector))
