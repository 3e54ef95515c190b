"""Device key pairs, master-key sealing, DSN bundles (CMS) and verify tokens."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import hashlib
import hmac
import io
import os
import pathlib
import re
import secrets
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

__all__ = [
    "PUBLIC_KEY_PEM_HEADER",
    "InvalidCertificateError",
    "KeyDecryptionError",
    "Keyring",
    "MasterKey",
    "MasterKeyMissing",
    "SealedKeyPair",
    "VerifyTokenError",
    "build_dsn_zip",
    "build_reserve_bundle",
    "decrypt_verify_token",
    "device_xml",
    "encrypt_verify_token",
    "envelope_for_certificate",
    "generate_private_key_der",
    "generate_sealed_key_pair",
    "load_factory_certificate",
    "make_self_signed_certificate",
    "public_key_aad",
    "seal_key_pair",
    "unseal_private_key",
    "unwrap_key",
    "wrap_key",
]

PUBLIC_KEY_PEM_HEADER = "-----BEGIN RSA PUBLIC KEY-----"

RSA_KEY_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537
MIN_FACTORY_KEY_BITS = 2048

_MASTER_KEY_LEN = 32
_NONCE_LEN = 12
_TAG_LEN = 16
_SEAL_VERSION = b"\x01"
_DSN_FILENAME = re.compile(r"[A-Za-z0-9_-]+")
# Fixed timestamp so the same devices always give the same zip bytes.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class KeyDecryptionError(Exception):
    """A sealed blob failed authentication (tampered, wrong key or wrong aad)."""


class InvalidCertificateError(ValueError):
    """The factory certificate cannot be used to encrypt a DSN bundle."""


class VerifyTokenError(Exception):
    """A verify token could not be decrypted with the device's private key."""


class MasterKey:
    """AES-256-GCM key that encrypts private keys at rest.

    Sealed format: version byte 0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes).
    Key file format: the 32 key bytes in standard base64 on one line (44 chars + newline).
    """

    __slots__ = ("_aead", "_key", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != _MASTER_KEY_LEN:
            raise ValueError(f"master key must be {_MASTER_KEY_LEN} bytes")
        self._key = bytes(key)
        self._aead = AESGCM(self._key)
        # Names the key without revealing anything of it: what each sealed key records.
        self.key_id = hmac.new(self._key, b"devicefactory master key id v1", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"MasterKey(<redacted>, id={self.key_id})"

    @classmethod
    def load_or_create(cls, path: pathlib.Path) -> MasterKey:
        """Load the key file, creating it (mode 0600) with a fresh random key if absent."""
        try:
            return cls._load(path)
        except FileNotFoundError:
            pass
        return cls._create(path)

    def secret_bytes(self) -> bytes:
        """The raw key, e.g. to hand to generate_sealed_key_pair in a worker process."""
        return self._key

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> bytes:
        if len(blob) < 1 + _NONCE_LEN + _TAG_LEN or blob[:1] != _SEAL_VERSION:
            raise KeyDecryptionError("sealed blob is truncated or has an unknown format")
        nonce, ciphertext = blob[1 : 1 + _NONCE_LEN], blob[1 + _NONCE_LEN :]
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise KeyDecryptionError(
                "sealed blob failed authentication (tampered, wrong master key or wrong key pair)"
            ) from None

    @classmethod
    def _load(cls, path: pathlib.Path) -> MasterKey:
        with open(path, "rb") as f:
            _tighten_permissions(f.fileno())
            data = f.read(1024)
        return cls(_decode_key_file(data, path))

    @classmethod
    def _create(cls, path: pathlib.Path) -> MasterKey:
        key = os.urandom(_MASTER_KEY_LEN)
        if not publish_new_file(path, base64.b64encode(key) + b"\n"):
            return cls._load(path)  # another process made it first
        return cls(key)


def publish_new_file(path: pathlib.Path, data: bytes) -> bool:
    """Write ``path`` (mode 0600) whole, unless it exists; False when another process won."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        _write_new_file(tmp, data)
        # link() publishes a fully written file and fails if another process won the race.
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _decode_key_file(data: bytes, path: pathlib.Path) -> bytes:
    error = ValueError(
        f"master key file {path} is invalid: expected {_MASTER_KEY_LEN} bytes in base64 "
        "on one line (44 characters)"
    )
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except binascii.Error:
        raise error from None
    if len(key) != _MASTER_KEY_LEN:
        raise error
    return key


def _tighten_permissions(fd: int) -> None:
    # A readable key file is tightened rather than refused; a read-only mount (e.g. a
    # Kubernetes secret) cannot be changed and is left to its operator.
    if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)


def _write_new_file(path: pathlib.Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class SealedKeyPair:
    """A device public key and its private key sealed with the master key."""

    public_pem: str
    sealed_private: bytes = field(repr=False)
    # The id of the master key that sealed it (None: sealed before ids were recorded).
    key_id: str | None = None


def public_key_aad(public_pem: str) -> bytes:
    """AAD that binds a sealed private key to its public key."""
    return hashlib.sha256(public_pem.encode("utf-8")).digest()


def generate_private_key_der() -> tuple[bytes, str]:
    """RSA-2048 (e=65537) -> (PKCS#8 DER private key, PKCS#1 PEM public key)."""
    key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)
    private_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return private_der, public_pem.decode("ascii")


def seal_key_pair(master: MasterKey, private_der: bytes, public_pem: str) -> SealedKeyPair:
    sealed = master.encrypt(private_der, aad=public_key_aad(public_pem))
    return SealedKeyPair(public_pem=public_pem, sealed_private=sealed, key_id=master.key_id)


def unseal_private_key(master: MasterKey, pair: SealedKeyPair) -> bytes:
    """The PKCS#8 DER private key; raises KeyDecryptionError if it does not belong to pair."""
    return master.decrypt(pair.sealed_private, aad=public_key_aad(pair.public_pem))


class MasterKeyMissing(KeyDecryptionError):
    """The key that sealed a private key is not among the keys this process holds."""


class Keyring:
    """The master keys a process holds: ``primary`` seals, any of them opens.

    ``configured`` is the one the process was started with (its settings); during a
    rotation the new key joins as primary (keys.master).
    """

    def __init__(self, configured: MasterKey) -> None:
        self.configured = self.primary = configured
        self._keys = {configured.key_id: configured}

    def add(self, key: MasterKey) -> None:
        """Hold ``key`` too, and seal with it from now on."""
        self._keys[key.key_id] = key
        self.primary = key

    def holds(self, key_id: str) -> bool:
        return key_id in self._keys

    def unseal(self, pair: SealedKeyPair) -> bytes:
        """The PKCS#8 DER private key of ``pair``, opened with the key that sealed it."""
        if pair.key_id is not None:
            key = self._keys.get(pair.key_id)
            if key is None:
                raise MasterKeyMissing(f"master key {pair.key_id} is not loaded")
            return unseal_private_key(key, pair)
        for key in self._keys.values():  # sealed before ids were recorded: whichever opens it
            with contextlib.suppress(KeyDecryptionError):
                return unseal_private_key(key, pair)
        raise KeyDecryptionError("no loaded master key opens this private key")

    def reseal(self, pair: SealedKeyPair, key: MasterKey) -> SealedKeyPair:
        """``pair`` sealed with ``key`` instead."""
        return seal_key_pair(key, self.unseal(pair), pair.public_pem)


def wrap_key(wrapping: MasterKey, key: MasterKey) -> bytes:
    """``key`` sealed with ``wrapping`` (a rotation hands the new key to running processes)."""
    return wrapping.encrypt(key.secret_bytes(), aad=_WRAP_AAD + key.key_id.encode())


def unwrap_key(wrapping: MasterKey, wrapped: bytes, key_id: str) -> MasterKey:
    key = MasterKey(wrapping.decrypt(wrapped, aad=_WRAP_AAD + key_id.encode()))
    if key.key_id != key_id:
        raise KeyDecryptionError("the unwrapped master key is not the one named")
    return key


_WRAP_AAD = b"devicefactory master key wrap v1:"


def generate_sealed_key_pair(master_key_bytes: bytes) -> SealedKeyPair:
    """Generate and seal a key pair."""
    private_der, public_pem = generate_private_key_der()
    return seal_key_pair(MasterKey(master_key_bytes), private_der, public_pem)


def generate_sealed_key_pairs(master_key_bytes: bytes, count: int) -> list[SealedKeyPair]:
    """A key-generation task of ``count`` pairs (batched to amortise the hand-off)."""
    return [generate_sealed_key_pair(master_key_bytes) for _ in range(count)]


def device_xml(dsn: str, public_pem: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<f-device><dsn>{escape(dsn)}</dsn>"
        f"<public-key>{escape(public_pem)}</public-key></f-device>\n"
    ).encode()


def build_dsn_zip(devices: Iterable[tuple[str, str]]) -> bytes:
    """Deflated zip with one "<DSN>.xml" per (dsn, public_pem), in the order given."""
    buffer = io.BytesIO()
    seen: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for dsn, public_pem in devices:
            _check_dsn_filename(dsn, seen)
            info = zipfile.ZipInfo(f"{dsn}.xml", date_time=_ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, device_xml(dsn, public_pem))
    return buffer.getvalue()


def _check_dsn_filename(dsn: str, seen: set[str]) -> None:
    # The DSN becomes a file name in the zip: no path tricks, no duplicates.
    if not _DSN_FILENAME.fullmatch(dsn):
        raise ValueError(f"DSN {dsn!r} cannot be used as a file name")
    if dsn in seen:
        raise ValueError(f"DSN {dsn!r} appears twice")
    seen.add(dsn)


def load_factory_certificate(pem: bytes) -> x509.Certificate:
    """Parse one PEM X.509 certificate with an RSA key (needed for CMS key transport)."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidCertificateError("not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidCertificateError("the PEM certificate could not be parsed") from None
    if len(certificates) != 1:
        raise InvalidCertificateError(f"expected exactly one certificate, found {len(certificates)}")
    _check_recipient_key(certificates[0])
    return certificates[0]


def _check_recipient_key(certificate: x509.Certificate) -> None:
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidCertificateError("the certificate's public key type is not supported") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidCertificateError(
            f"the certificate has {_key_kind(key)} key; an RSA key is required to encrypt DSN bundles"
        )
    if key.key_size < MIN_FACTORY_KEY_BITS:
        raise InvalidCertificateError(
            f"the certificate's RSA key has {key.key_size} bits; at least {MIN_FACTORY_KEY_BITS} are required"
        )


def _key_kind(key: object) -> str:
    kinds = (
        (ec.EllipticCurvePublicKey, "an EC"),
        (ed25519.Ed25519PublicKey, "an Ed25519"),
        (ed448.Ed448PublicKey, "an Ed448"),
        (dsa.DSAPublicKey, "a DSA"),
    )
    return next((label for cls, label in kinds if isinstance(key, cls)), "a non-RSA")


def envelope_for_certificate(data: bytes, certificate_pem: bytes) -> bytes:
    """CMS EnvelopedData (DER, AES-256-CBC, RSA key transport) of data for the certificate."""
    certificate = load_factory_certificate(certificate_pem)
    builder = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)
        .add_recipient(certificate)
        .set_content_encryption_algorithm(algorithms.AES256)
    )
    # Binary: without it the content is S/MIME-canonicalised (LF -> CRLF), corrupting the zip.
    return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def build_reserve_bundle(devices: Iterable[tuple[str, str]], certificate_pem: bytes) -> bytes:
    return envelope_for_certificate(build_dsn_zip(devices), certificate_pem)


def decrypt_verify_token(token: bytes, private_der: bytes) -> bytes:
    """RSA-OAEP (SHA-256, MGF1-SHA-256, no label) decryption of a device's verify token."""
    try:
        # The key was generated here and sealed with AEAD, so skip the ~30 ms validation.
        key = serialization.load_der_private_key(
            private_der, password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("not an RSA key")
        return key.decrypt(token, _OAEP)
    except (ValueError, TypeError):
        raise VerifyTokenError("verify token could not be decrypted with this device's key") from None


def encrypt_verify_token(public_pem: str, message: bytes) -> bytes:
    """Device side of the verify token: RSA-OAEP-SHA-256 with the device public key."""
    key = serialization.load_pem_public_key(public_pem.encode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    return key.encrypt(message, _OAEP)


def make_self_signed_certificate(common_name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, unencrypted PKCS#8 private key PEM), RSA-2048, valid 10 years."""
    key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_KEY_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
