"""Tests for devicefactory.keys.crypto."""

from __future__ import annotations

import base64
import datetime
import io
import multiprocessing
import os
import pathlib
import pickle
import stat
import subprocess
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from devicefactory.keys import crypto
from devicefactory.keys.crypto import (
    PUBLIC_KEY_PEM_HEADER,
    InvalidCertificateError,
    KeyDecryptionError,
    MasterKey,
    SealedKeyPair,
    VerifyTokenError,
)

OPENSSL = "/usr/bin/openssl"
# DER encoding of OID 2.16.840.1.101.3.4.1.42 (aes256-CBC).
AES256_CBC_OID_DER = bytes.fromhex("060960864801650304012a")
DSN_1 = "AC000W000000001"
DSN_2 = "AC000W000000002"


# --- fixtures: RSA key generation is slow, so keys are made once per module ---


@pytest.fixture(scope="module")
def master() -> MasterKey:
    return MasterKey(os.urandom(32))


@pytest.fixture(scope="module")
def pair(master: MasterKey) -> SealedKeyPair:
    # Generated in a worker process, exactly as the service does.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(crypto.generate_sealed_key_pair, master.secret_bytes()).result()


@pytest.fixture(scope="module")
def private_der(master: MasterKey, pair: SealedKeyPair) -> bytes:
    return crypto.unseal_private_key(master, pair)


@pytest.fixture(scope="module")
def factory() -> tuple[bytes, bytes]:
    return crypto.make_self_signed_certificate("Test Factory")


@pytest.fixture(scope="module")
def other_public_pem(factory: tuple[bytes, bytes]) -> str:
    """A PKCS#1 public key PEM that is not the device's (the factory certificate's key)."""
    key = x509.load_pem_x509_certificate(factory[0]).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()


def _devices(pair: SealedKeyPair, other_public_pem: str) -> list[tuple[str, str]]:
    return [(DSN_2, pair.public_pem), (DSN_1, other_public_pem)]


# --- master key file ---


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _same_key(a: MasterKey, b: MasterKey) -> bool:
    opened = b.decrypt(a.encrypt(b"x", aad=b""), aad=b"")
    return a.secret_bytes() == b.secret_bytes() and opened == b"x"


def test_master_key_created_0600_as_base64_in_new_dirs(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "deep" / "er" / "master.key"
    key = MasterKey.load_or_create(path)
    assert _mode(path) == 0o600
    content = path.read_bytes()
    assert content.endswith(b"\n")
    assert len(content) == 45
    assert base64.b64decode(content.strip(), validate=True) == key.secret_bytes()
    assert os.listdir(path.parent) == ["master.key"]


def test_master_key_reload_gives_same_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "master.key"
    first = MasterKey.load_or_create(path)
    second = MasterKey.load_or_create(path)
    assert _same_key(first, second)


def test_master_keys_created_in_different_files_differ(tmp_path: pathlib.Path) -> None:
    a = MasterKey.load_or_create(tmp_path / "a.key")
    b = MasterKey.load_or_create(tmp_path / "b.key")
    assert a.secret_bytes() != b.secret_bytes()


def test_concurrent_creators_all_get_the_same_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "master.key"
    barrier = threading.Barrier(8)

    def create(_: int) -> bytes:
        barrier.wait()
        return MasterKey.load_or_create(path).secret_bytes()

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(create, range(8)))
    assert len(keys) == 1
    assert base64.b64decode(path.read_bytes()) == keys.pop()
    assert os.listdir(tmp_path) == ["master.key"]


def test_race_loser_reads_the_winners_key(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "master.key"
    winner = os.urandom(32)
    real_link: Callable[[str | os.PathLike[str], str | os.PathLike[str]], None] = os.link

    def link_after_winner(src: pathlib.Path, dst: pathlib.Path) -> None:
        dst.write_bytes(base64.b64encode(winner) + b"\n")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_winner)
    assert MasterKey.load_or_create(path).secret_bytes() == winner
    assert os.listdir(tmp_path) == ["master.key"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00" * 32,
        base64.b64encode(b"k" * 31) + b"\n",
        base64.b64encode(b"k" * 33) + b"\n",
        b"not base64 at all!!!\n",
        base64.b64encode(b"k" * 32) * 2 + b"\n",
    ],
)
def test_master_key_file_of_wrong_format_is_refused(tmp_path: pathlib.Path, content: bytes) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"master key file .* is invalid"):
        MasterKey.load_or_create(path)
    assert path.read_bytes() == content


def test_readable_master_key_file_is_tightened_to_0600(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "master.key"
    raw = os.urandom(32)
    path.write_bytes(base64.b64encode(raw) + b"\n")
    path.chmod(0o644)
    assert MasterKey.load_or_create(path).secret_bytes() == raw
    assert _mode(path) == 0o600


def test_unchangeable_master_key_permissions_are_tolerated(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "master.key"
    raw = os.urandom(32)
    path.write_bytes(base64.b64encode(raw) + b"\n")
    path.chmod(0o644)

    def read_only_mount(fd: int, mode: int) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "fchmod", read_only_mount)
    assert MasterKey.load_or_create(path).secret_bytes() == raw


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_master_key_needs_32_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey(b"k" * length)


# --- master key encryption ---


@pytest.mark.parametrize("plaintext", [b"", b"a", bytes(range(256)) * 20])
@pytest.mark.parametrize("aad", [b"", b"aad", bytes(range(32))])
def test_encrypt_decrypt_round_trip(master: MasterKey, plaintext: bytes, aad: bytes) -> None:
    blob = master.encrypt(plaintext, aad=aad)
    assert blob[:1] == b"\x01"
    assert len(blob) == 1 + 12 + len(plaintext) + 16
    assert len(plaintext) < 16 or plaintext not in blob
    assert master.decrypt(blob, aad=aad) == plaintext


def test_encrypt_uses_a_fresh_nonce(master: MasterKey) -> None:
    assert master.encrypt(b"same", aad=b"a") != master.encrypt(b"same", aad=b"a")


def test_every_flipped_byte_is_detected(master: MasterKey) -> None:
    blob = master.encrypt(b"private key bytes", aad=b"aad")
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(KeyDecryptionError):
            master.decrypt(bytes(tampered), aad=b"aad")


@pytest.mark.parametrize("cut", [0, 1, 13, 28, -1])
def test_truncated_blob_is_refused(master: MasterKey, cut: int) -> None:
    blob = master.encrypt(b"private key bytes", aad=b"aad")
    with pytest.raises(KeyDecryptionError):
        master.decrypt(blob[:cut], aad=b"aad")


def test_wrong_aad_is_refused(master: MasterKey) -> None:
    blob = master.encrypt(b"secret", aad=b"right")
    with pytest.raises(KeyDecryptionError):
        master.decrypt(blob, aad=b"wrong")


def test_wrong_master_key_is_refused(master: MasterKey) -> None:
    blob = master.encrypt(b"secret", aad=b"aad")
    with pytest.raises(KeyDecryptionError):
        MasterKey(os.urandom(32)).decrypt(blob, aad=b"aad")


def test_master_key_repr_shows_no_key_material() -> None:
    raw = bytes(range(32))
    key = MasterKey(raw)
    for text in (repr(key), str(key), f"{key!r} {key}"):
        for secret in (raw.hex(), base64.b64encode(raw).decode(), repr(raw), raw.hex()[:16]):
            assert secret not in text
    assert "redacted" in repr(key)


# --- generated key pairs ---


def test_public_key_is_pkcs1_rsa_2048_e65537(pair: SealedKeyPair) -> None:
    assert pair.public_pem.startswith(PUBLIC_KEY_PEM_HEADER + "\n")
    assert pair.public_pem.endswith("-----END RSA PUBLIC KEY-----\n")
    key = serialization.load_pem_public_key(pair.public_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048
    assert key.public_numbers().e == 65537


def test_sealed_private_key_opens_and_matches_public_key(master: MasterKey, pair: SealedKeyPair) -> None:
    der = master.decrypt(pair.sealed_private, aad=crypto.public_key_aad(pair.public_pem))
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der == pkcs8
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert public.decode() == pair.public_pem


def test_sealed_private_key_is_bound_to_its_public_key(
    master: MasterKey, pair: SealedKeyPair, other_public_pem: str
) -> None:
    swapped = SealedKeyPair(public_pem=other_public_pem, sealed_private=pair.sealed_private)
    with pytest.raises(KeyDecryptionError):
        crypto.unseal_private_key(master, swapped)
    with pytest.raises(KeyDecryptionError):
        crypto.unseal_private_key(MasterKey(os.urandom(32)), pair)


def test_public_key_aad_is_sha256_of_the_pem(pair: SealedKeyPair) -> None:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(pair.public_pem.encode())
    assert crypto.public_key_aad(pair.public_pem) == digest.finalize()


def test_seal_key_pair_round_trip(master: MasterKey, pair: SealedKeyPair, private_der: bytes) -> None:
    resealed = crypto.seal_key_pair(master, private_der, pair.public_pem)
    assert resealed.public_pem == pair.public_pem
    assert resealed.sealed_private != pair.sealed_private
    assert crypto.unseal_private_key(master, resealed) == private_der


def test_sealed_key_pair_repr_hides_sealed_bytes(pair: SealedKeyPair) -> None:
    text = repr(pair)
    assert "sealed_private" not in text
    assert repr(pair.sealed_private) not in text
    assert pair.sealed_private.hex()[:32] not in text
    assert "public_pem" in text


def test_sealed_key_pair_survives_pickling(pair: SealedKeyPair) -> None:
    assert pickle.loads(pickle.dumps(pair)) == pair


# --- device XML and DSN zip ---


def test_device_xml_exact_bytes() -> None:
    pem = f"{PUBLIC_KEY_PEM_HEADER}\nMIIBCgKCAQEAx/y+\n-----END RSA PUBLIC KEY-----\n"
    assert crypto.device_xml(DSN_1, pem) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<f-device><dsn>AC000W000000001</dsn><public-key>-----BEGIN RSA PUBLIC KEY-----\n"
        b"MIIBCgKCAQEAx/y+\n-----END RSA PUBLIC KEY-----\n</public-key></f-device>\n"
    )


def test_device_xml_escapes_special_characters() -> None:
    xml = crypto.device_xml("A<&>", "k<e>y&")
    assert b"<dsn>A&lt;&amp;&gt;</dsn>" in xml
    assert b"<public-key>k&lt;e&gt;y&amp;</public-key>" in xml


def test_zip_holds_one_xml_per_device_in_order(pair: SealedKeyPair, other_public_pem: str) -> None:
    devices = _devices(pair, other_public_pem)
    with zipfile.ZipFile(io.BytesIO(crypto.build_dsn_zip(devices))) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [f"{DSN_2}.xml", f"{DSN_1}.xml"]
        for dsn, pem in devices:
            info = archive.getinfo(f"{dsn}.xml")
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert archive.read(info) == crypto.device_xml(dsn, pem)


def test_zip_is_deterministic(pair: SealedKeyPair, other_public_pem: str) -> None:
    devices = _devices(pair, other_public_pem)
    assert crypto.build_dsn_zip(devices) == crypto.build_dsn_zip(iter(devices))


def test_empty_zip_is_valid() -> None:
    with zipfile.ZipFile(io.BytesIO(crypto.build_dsn_zip([]))) as archive:
        assert archive.namelist() == []


@pytest.mark.parametrize("dsn", ["", "../evil", "a/b", "a\\b", ".hidden", "AC 1"])
def test_zip_refuses_dsns_unfit_for_file_names(dsn: str) -> None:
    with pytest.raises(ValueError, match="file name"):
        crypto.build_dsn_zip([(dsn, "pem")])


def test_zip_refuses_duplicate_dsns() -> None:
    with pytest.raises(ValueError, match="twice"):
        crypto.build_dsn_zip([(DSN_1, "a"), (DSN_2, "b"), (DSN_1, "c")])


# --- CMS envelope ---


def _write(tmp_path: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _openssl_decrypt(tmp_path: pathlib.Path, envelope: bytes, key_pem: bytes) -> bytes:
    bundle = _write(tmp_path, "bundle.cms", envelope)
    key = _write(tmp_path, "factory.key", key_pem)
    out = tmp_path / "dsns.zip"
    subprocess.run(
        [OPENSSL, "cms", "-decrypt", "-inform", "DER", "-in", bundle, "-inkey", key, "-out", out],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out.read_bytes()


def test_reserve_bundle_decrypts_with_openssl_cms(
    tmp_path: pathlib.Path,
    factory: tuple[bytes, bytes],
    pair: SealedKeyPair,
    other_public_pem: str,
) -> None:
    cert_pem, key_pem = factory
    devices = _devices(pair, other_public_pem)
    recovered = _openssl_decrypt(tmp_path, crypto.build_reserve_bundle(devices, cert_pem), key_pem)
    assert recovered == crypto.build_dsn_zip(devices)
    with zipfile.ZipFile(io.BytesIO(recovered)) as archive:
        assert archive.namelist() == [f"{DSN_2}.xml", f"{DSN_1}.xml"]
        assert archive.read(f"{DSN_2}.xml") == crypto.device_xml(DSN_2, pair.public_pem)


def test_reserve_bundle_decrypts_in_python(
    factory: tuple[bytes, bytes], pair: SealedKeyPair, other_public_pem: str
) -> None:
    cert_pem, key_pem = factory
    devices = _devices(pair, other_public_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    bundle = crypto.build_reserve_bundle(devices, cert_pem)
    assert pkcs7.pkcs7_decrypt_der(bundle, certificate, key, []) == crypto.build_dsn_zip(devices)


def test_envelope_keeps_binary_data_exactly(tmp_path: pathlib.Path, factory: tuple[bytes, bytes]) -> None:
    cert_pem, key_pem = factory
    data = b"line\nother\r\nlone\r\x00\xff" + os.urandom(1000)
    envelope = crypto.envelope_for_certificate(data, cert_pem)
    assert _openssl_decrypt(tmp_path, envelope, key_pem) == data


def test_envelope_uses_aes_256_and_rsa_key_transport(
    tmp_path: pathlib.Path, factory: tuple[bytes, bytes]
) -> None:
    envelope = crypto.envelope_for_certificate(b"data", factory[0])
    assert AES256_CBC_OID_DER in envelope
    printed = subprocess.run(
        [
            OPENSSL,
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            _write(tmp_path, "e", envelope),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "pkcs7-envelopedData" in printed
    assert "aes-256-cbc (2.16.840.1.101.3.4.1.42)" in printed
    assert "rsaEncryption" in printed
    assert "CN=Test Factory" in printed


def test_envelope_refuses_unusable_certificate() -> None:
    with pytest.raises(InvalidCertificateError):
        crypto.envelope_for_certificate(b"data", b"not a certificate")


# --- factory certificates ---


def _self_signed_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other Factory")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_load_factory_certificate_accepts_rsa_certificate(factory: tuple[bytes, bytes]) -> None:
    certificate = crypto.load_factory_certificate(factory[0])
    assert certificate.subject.rfc4514_string() == "CN=Test Factory"


def test_load_factory_certificate_refuses_ec_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidCertificateError, match="EC key; an RSA key is required"):
        crypto.load_factory_certificate(_self_signed_pem(key))


def test_load_factory_certificate_refuses_small_rsa_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidCertificateError, match="1024 bits; at least 2048"):
        crypto.load_factory_certificate(_self_signed_pem(key))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda cert, key: b"", "not a PEM certificate"),
        (lambda cert, key: b"garbage \x00\xff", "not a PEM certificate"),
        (lambda cert, key: key, "not a PEM certificate"),
        (
            lambda cert, key: x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER),
            "not a PEM certificate",
        ),
        (
            lambda cert, key: b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
            "could not be parsed",
        ),
        (lambda cert, key: cert + cert, "exactly one certificate, found 2"),
    ],
    ids=["empty", "garbage", "private-key", "der", "bad-body", "two-certs"],
)
def test_load_factory_certificate_refuses_bad_input(
    factory: tuple[bytes, bytes], make: Callable[[bytes, bytes], bytes], message: str
) -> None:
    cert_pem, key_pem = factory
    with pytest.raises(InvalidCertificateError, match=message) as excinfo:
        crypto.load_factory_certificate(make(cert_pem, key_pem))
    assert key_pem.splitlines()[1].decode() not in str(excinfo.value)


def test_load_factory_certificate_refuses_public_key_pem(pair: SealedKeyPair) -> None:
    with pytest.raises(InvalidCertificateError, match="not a PEM certificate"):
        crypto.load_factory_certificate(pair.public_pem.encode())


def test_invalid_certificate_error_is_a_value_error() -> None:
    assert issubclass(InvalidCertificateError, ValueError)


def test_self_signed_certificate_is_rsa_2048_valid_ten_years(
    factory: tuple[bytes, bytes],
) -> None:
    cert_pem, key_pem = factory
    certificate = x509.load_pem_x509_certificate(cert_pem)
    certificate.verify_directly_issued_by(certificate)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(days=3650) <= lifetime <= datetime.timedelta(days=3651)
    now = datetime.datetime.now(datetime.UTC)
    assert certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    cert_key = certificate.public_key()
    assert isinstance(cert_key, rsa.RSAPublicKey)
    assert key.public_key().public_numbers() == cert_key.public_numbers()


# --- verify tokens ---


@pytest.mark.parametrize("message", [b"", b"nonce-1234", bytes(range(190))])
def test_verify_token_round_trip(pair: SealedKeyPair, private_der: bytes, message: bytes) -> None:
    token = crypto.encrypt_verify_token(pair.public_pem, message)
    assert len(token) == 256
    assert crypto.decrypt_verify_token(token, private_der) == message


def test_verify_token_is_standard_rsa_oaep_sha256(pair: SealedKeyPair, private_der: bytes) -> None:
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    public = serialization.load_pem_public_key(pair.public_pem.encode())
    private = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(public, rsa.RSAPublicKey)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert crypto.decrypt_verify_token(public.encrypt(b"device", oaep), private_der) == b"device"
    token = crypto.encrypt_verify_token(pair.public_pem, b"server")
    assert private.decrypt(token, oaep) == b"server"


def test_verify_token_for_another_key_is_refused(private_der: bytes, other_public_pem: str) -> None:
    token = crypto.encrypt_verify_token(other_public_pem, b"nonce")
    with pytest.raises(VerifyTokenError) as excinfo:
        crypto.decrypt_verify_token(token, private_der)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


@pytest.mark.parametrize("token", [b"", b"garbage", b"\x00" * 256, b"\xff" * 256, b"x" * 512])
def test_garbage_verify_token_is_refused(private_der: bytes, token: bytes) -> None:
    with pytest.raises(VerifyTokenError):
        crypto.decrypt_verify_token(token, private_der)


def test_tampered_verify_token_is_refused(pair: SealedKeyPair, private_der: bytes) -> None:
    token = bytearray(crypto.encrypt_verify_token(pair.public_pem, b"nonce"))
    token[100] ^= 0x01
    with pytest.raises(VerifyTokenError):
        crypto.decrypt_verify_token(bytes(token), private_der)


def test_verify_token_with_unusable_private_key_is_refused(pair: SealedKeyPair) -> None:
    token = crypto.encrypt_verify_token(pair.public_pem, b"nonce")
    ec_der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for bad_key in (b"", b"not a key", ec_der):
        with pytest.raises(VerifyTokenError, match="could not be decrypted") as excinfo:
            crypto.decrypt_verify_token(token, bad_key)
        assert bad_key.hex() == "" or bad_key.hex()[:40] not in str(excinfo.value)
