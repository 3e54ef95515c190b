"""The master key held wrapped by an AES key inside a PKCS#11 token (an HSM; SoftHSM2 in
tests), through python-pkcs11.

The key file then holds only ``pkcs11-aes-gcm-v1:`` and the base64 of nonce || wrapped
key: the master key is unwrapped by the token into this process's memory at start and
never rests in clear on disk. The token's key (``_KEY_LABEL``) is made, sensitive and not
extractable, on first use when the token has none by that label.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, ObjectClass

from devicefactory.config import Settings
from devicefactory.keys.crypto import MasterKey, publish_new_file

PREFIX = b"pkcs11-aes-gcm-v1:"
_AAD = b"devicefactory master key"
_NONCE = 12


class HsmError(RuntimeError):
    """The token or its key could not be used (wrong module, label or PIN, a bad file)."""


@dataclass(frozen=True)
class HsmWrap:
    module: str
    token_label: str
    pin: str
    key_label: str

    @classmethod
    def of(cls, settings: Settings) -> HsmWrap:
        missing = [
            name
            for name, value in (
                ("TOKEN_LABEL", settings.master_key_pkcs11_token_label),
                ("PIN", settings.master_key_pkcs11_pin),
                ("KEY_LABEL", settings.master_key_pkcs11_key_label),
            )
            if not value
        ]
        if missing:
            names = ", ".join(f"DEVICEFACTORY_MASTER_KEY_PKCS11_{name}" for name in missing)
            raise HsmError(f"DEVICEFACTORY_MASTER_KEY_PKCS11_MODULE is set but not {names}")
        return cls(
            str(settings.master_key_pkcs11_module),
            str(settings.master_key_pkcs11_token_label),
            str(settings.master_key_pkcs11_pin),
            str(settings.master_key_pkcs11_key_label),
        )

    def load_or_create(self, path: Path) -> MasterKey:
        """The master key wrapped in ``path``; a new one (wrapped, written 0600) if absent."""
        if path.exists():
            return MasterKey(self._unwrap(path.read_bytes().strip(), path))
        secret, nonce = os.urandom(32), os.urandom(_NONCE)
        wrapped = self._with_key(lambda key: key.encrypt(secret, **_gcm(nonce)), create=True)
        if not publish_new_file(path, PREFIX + base64.b64encode(nonce + wrapped) + b"\n"):
            return self.load_or_create(path)  # another process made it first
        return MasterKey(secret)

    def _unwrap(self, text: bytes, path: Path) -> bytes:
        if not text.startswith(PREFIX):
            raise HsmError(
                f"{path} does not hold an HSM-wrapped master key (it should start {PREFIX.decode()})"
            )
        try:
            raw = base64.b64decode(text[len(PREFIX) :], validate=True)
        except ValueError:
            raise HsmError(f"{path} is not valid base64 after its prefix") from None
        nonce, wrapped = raw[:_NONCE], raw[_NONCE:]

        def unwrap(key: Any) -> bytes:
            try:
                secret: bytes = key.decrypt(wrapped, **_gcm(nonce))
            except pkcs11.PKCS11Error as error:
                raise HsmError(f"the token could not unwrap {path}: {type(error).__name__}") from None
            return secret

        result: bytes = self._with_key(unwrap, create=False)
        return result

    def _with_key(self, use: Callable[[Any], Any], *, create: bool) -> Any:
        """``use`` the token's wrapping key in a session; made first if ``create`` and missing."""
        try:
            token = pkcs11.lib(self.module).get_token(token_label=self.token_label)
            with token.open(user_pin=self.pin, rw=True) as session:
                return use(self._key(session, create=create))
        except HsmError:
            raise
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as error:
            raise HsmError(f"the PKCS#11 token {self.token_label!r} could not be used: {error!r}") from None

    def _key(self, session: Any, *, create: bool) -> Any:
        try:
            return session.get_key(
                object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=self.key_label
            )
        except pkcs11.NoSuchKey:
            if not create:
                raise HsmError(
                    f"the token has no AES key labelled {self.key_label!r}, which wrapped the master key"
                ) from None
            template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
            return session.generate_key(KeyType.AES, 256, label=self.key_label, store=True, template=template)


def _gcm(nonce: bytes) -> dict[str, Any]:
    return {"mechanism": Mechanism.AES_GCM, "mechanism_param": GCMParams(nonce, _AAD, 128)}
