"""scrypt, the key derivation of passphrase key slots and protected recovery kits.

What it promises:

- **New costs are never below the production floor outside tests.**  :func:`scrypt_cost`
  is N = 2**17 (r = 8, p = 1: 128 MiB, about 0.3 s), or ``$STRONGROOM_SCRYPT_N`` when set:
  a power of two up to 2**20.  Below :data:`PRODUCTION_MIN_SCRYPT_N` (2**17) it is refused
  (UsageError) unless ``STRONGROOM_INSECURE_TEST_KDF=1`` is set too: a setting for test
  suites only, whose name says what it does (the strongroom test suite and the
  ``strongroom_weak_kdf`` fixture of :mod:`strongroom.testing` set both).
- **A stored cost is checked before anything is derived** (:func:`check_scrypt`): N a
  power of two from 2**10 to 2**20, r from 1 to 32, p from 1 to 16, at most 1 GiB of
  memory (128·N·r bytes), at most 2**23 for N·r·p (the work of N = 2**20, r = 8, p = 1,
  a few seconds), N below 2**(16·r) (RFC 7914), a salt of 16 to 64 bytes in base64, ``kdf`` = ``"scrypt"``.  Anything
  else is a ValueError naming what is wrong: a planted or damaged slot never makes scrypt
  allocate or run without bound.  A stored cost below the production floor is still
  used (an attacker with the storage cannot lower a cost: it is authenticated, and a low
  cost only helps whoever attacks that slot offline, which refusing would not stop), with
  one warning line outside tests (:func:`warn_if_weak`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os

from ..errors import UsageError
from ..secrets import Secret

log = logging.getLogger(__name__)

SCRYPT_N_ENV = "STRONGROOM_SCRYPT_N"
#: Set to ``1`` (tests only) to allow STRONGROOM_SCRYPT_N below the production floor.
INSECURE_KDF_ENV = "STRONGROOM_INSECURE_TEST_KDF"

DEFAULT_SCRYPT_N = 2**17
PRODUCTION_MIN_SCRYPT_N = DEFAULT_SCRYPT_N
MIN_SCRYPT_N = 2**10
MAX_SCRYPT_N = 2**20
MAX_SCRYPT_MEMORY = 2**30
MAX_SCRYPT_WORK = 2**23
MIN_SALT, MAX_SALT = 16, 64
SCRYPT_R, SCRYPT_P = 8, 1


def insecure_kdf_allowed() -> bool:
    """Whether the test-only setting that allows a cost below the floor is given."""
    return os.environ.get(INSECURE_KDF_ENV) == "1"


def scrypt_cost() -> int:
    """The scrypt N for new passphrase slots and kits (see the module docstring)."""
    text = os.environ.get(SCRYPT_N_ENV)
    if text is None:
        return DEFAULT_SCRYPT_N
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < MIN_SCRYPT_N or n > MAX_SCRYPT_N or n & (n - 1):
        raise UsageError(
            message=f"{SCRYPT_N_ENV} must be a power of two from {PRODUCTION_MIN_SCRYPT_N} to {MAX_SCRYPT_N},"
                    f" not {text!r}")
    if n < PRODUCTION_MIN_SCRYPT_N and not insecure_kdf_allowed():
        raise UsageError(
            message=f"{SCRYPT_N_ENV}={n} is below the production floor {PRODUCTION_MIN_SCRYPT_N}: it would make"
                    f" the passphrase cheap to guess; it may only raise the cost (lower costs are for test suites)")
    return n


def new_scrypt_params() -> dict:
    """Public parameters for a new derivation: the cost and a fresh 16-byte salt."""
    return {"kdf": "scrypt", "n": scrypt_cost(), "r": SCRYPT_R, "p": SCRYPT_P,
            "salt": base64.b64encode(os.urandom(16)).decode()}


def check_scrypt(params: dict) -> tuple[int, int, int, bytes]:
    """(N, r, p, salt) of stored parameters; ValueError if they are not a cost this derives."""
    if not isinstance(params, dict) or params.get("kdf") != "scrypt":
        raise ValueError("its key derivation is not scrypt")
    n, r, p, salt = (params.get(k) for k in ("n", "r", "p", "salt"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise ValueError("its scrypt cost is not three whole numbers")
    if not (MIN_SCRYPT_N <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
            and 128 * n * r <= MAX_SCRYPT_MEMORY and n * r * p <= MAX_SCRYPT_WORK and n < 2 ** (16 * r)):
        raise ValueError(f"its scrypt cost N={n}, r={r}, p={p} is out of bounds")
    if not isinstance(salt, str):
        raise ValueError("its salt is not base64 text")
    if len(salt) > 4 * MAX_SALT:
        raise ValueError(f"its salt is longer than {MAX_SALT} bytes")
    raw = base64.b64decode(salt, validate=True)  # binascii.Error is a ValueError
    if not MIN_SALT <= len(raw) <= MAX_SALT:
        raise ValueError(f"its salt is {len(raw)} bytes, not {MIN_SALT} to {MAX_SALT}")
    return n, r, p, raw


def derive_scrypt(secret: Secret, params: dict) -> Secret:
    """scrypt(secret, salt, N, r, p) as a 32-byte key; ValueError if ``params`` are out of bounds."""
    n, r, p, salt = check_scrypt(params)
    maxmem = 128 * r * (n + p + 2) + (1 << 20)  # what OpenSSL allocates, and a margin (below 2 GiB)
    try:
        return Secret(hashlib.scrypt(secret.value, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=32))
    except ValueError as exc:  # OpenSSL refused the parameters
        raise ValueError(f"scrypt refused its cost N={n}, r={r}, p={p} ({exc})") from None


def warn_if_weak(params: dict, what: str) -> None:
    """One warning line when ``what`` was derived at a cost below the production floor (not in tests)."""
    n = params.get("n")
    if isinstance(n, int) and n < PRODUCTION_MIN_SCRYPT_N and not insecure_kdf_allowed():
        log.warning("warning: %s has a weak scrypt cost (N=%d, below %d): whoever has a copy of it can guess"
                    " its passphrase cheaply; replace it", what, n, PRODUCTION_MIN_SCRYPT_N)
