"""``pkcs11:`` secret references: a data object's value in the token, read at run time.

Resolved in a child process (SoftHSM2 reads its configuration once per process), through
the provider the plugin registers with ``strongroom_register_secret_providers``.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from strongroom import InvalidSecretReference

from hsmkit import PIN, TOKEN
from strongroom_pkcs11 import Pkcs11SecretProvider

RESOLVE = """
    import json, strongroom
    from strongroom_pkcs11 import Pkcs11SecretProvider
    resolver = strongroom.SecretResolver.of([Pkcs11SecretProvider()])
    try:
        print(json.dumps({"value": resolver.resolve(REF).value.decode()}))
    except strongroom.StrongroomError as exc:
        print(json.dumps({"error": str(exc), "code": exc.exit_code}))
"""


def _ref(hsm, label, pin="pin-env=HSM_PIN"):
    return f"pkcs11:module={hsm.module};token={TOKEN};object={label};{pin}"


def _resolve(hsm, ref, **env):
    return json.loads(hsm.python(textwrap.dedent(RESOLVE).replace("REF", repr(ref)), **env).splitlines()[-1])


def _put_data(hsm, label, value):
    hsm.python(f"""
        with lib.get_token(token_label={TOKEN!r}).open(user_pin={PIN!r}, rw=True) as s:
            s.create_object({{Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: {label!r},
                             Attribute.VALUE: {value!r}, Attribute.TOKEN: True, Attribute.PRIVATE: True}})
    """)


def test_a_data_object_resolves_and_failures_are_one_line(hsm, tmp_path):
    _put_data(hsm, "pg-password", b"s3cr3t-from-the-hsm")
    assert _resolve(hsm, _ref(hsm, "pg-password")) == {"value": "s3cr3t-from-the-hsm"}
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    assert _resolve(hsm, _ref(hsm, "pg-password", f"pin-file={pin_file}")) == {"value": "s3cr3t-from-the-hsm"}
    _put_data(hsm, "twice", b"a")
    _put_data(hsm, "twice", b"b")
    for ref, env, needle in ((_ref(hsm, "nope"), {}, "no data object labelled 'nope'"),
                             (_ref(hsm, "twice"), {}, "2 data objects labelled 'twice'"),
                             (_ref(hsm, "pg-password"), {"HSM_PIN": "9999"}, "refused the PIN"),
                             (_ref(hsm, "pg-password"), {"HSM_PIN": None}, "HSM_PIN is not set")):
        failed = _resolve(hsm, ref, **env)
        assert failed["code"] == 36 and needle in failed["error"] and "\n" not in failed["error"], failed
        assert "s3cr3t" not in failed["error"]
    hsm.delete_token(TOKEN)
    gone = _resolve(hsm, _ref(hsm, "pg-password"))
    assert gone["code"] == 36 and f"no PKCS#11 token '{TOKEN}'" in gone["error"]


def test_the_plugin_registers_the_scheme(hsm):
    """``strongroom plugins`` lists the pkcs11 secret provider next to the key provider."""
    listed = hsm.cli("plugins").stdout
    line = next(line for line in listed.splitlines() if line.startswith("pkcs11 "))
    assert "key-provider:pkcs11" in line and "secret-provider:pkcs11" in line


@pytest.mark.parametrize("rest", ["module=/m.so;token=t", "module=/m.so;token=t;object=o",
                                  "module=/m.so;token=t;object=o;pin-env=A;pin-file=/p",
                                  "module=/m.so;token=t;object=o;pin-env=A;colour=blue", "just-a-password"])
def test_a_malformed_reference_is_refused_when_given(rest):
    with pytest.raises(InvalidSecretReference) as excinfo:
        Pkcs11SecretProvider().canonical(rest)
    assert excinfo.value.exit_code == 35 and "just-a-password" not in str(excinfo.value)


def test_the_canonical_reference_has_a_fixed_order():
    assert Pkcs11SecretProvider().canonical("pin-env=P;object=o;token=t;module=/m.so") == \
        "module=/m.so;token=t;object=o;pin-env=P"
