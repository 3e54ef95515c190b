"""``serve`` speaks HTTPS itself and can require client certificates (mutual TLS, §9)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import LiveServer


def _issue(
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _write(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    cert_file, key_file = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


def test_https_with_required_client_certificates(
    database_url: str, master_key_file: Path, tmp_path: Path
) -> None:
    ca = _issue("factory CA", None, ca=True)
    ca_file, _ = _write(tmp_path / "ca", *ca)
    server_cert, server_key = _write(tmp_path / "server", *_issue("server", ca, ip="127.0.0.1"))
    client_cert = _write(tmp_path / "client", *_issue("line 7", ca))
    stranger = _write(tmp_path / "stranger", *_issue("stranger", None))
    trust = ssl.create_default_context(cafile=ca_file)
    trust.load_cert_chain(*client_cert)
    server = LiveServer(
        database_url,
        master_key_file,
        tmp_path,
        extra_args=("--tls-cert", server_cert, "--tls-key", server_key, "--tls-client-ca", ca_file),
        https_client={"verify": trust},
    )
    server.start()
    try:
        answer = httpx.get(f"{server.url}/healthz", verify=trust)
        assert answer.json() == {"status": "ok"}
        assert answer.headers["strict-transport-security"] == "max-age=31536000"  # HSTS under TLS
        no_certificate = ssl.create_default_context(cafile=ca_file)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/healthz", verify=no_certificate)
        wrong_issuer = ssl.create_default_context(cafile=ca_file)
        wrong_issuer.load_cert_chain(*stranger)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/healthz", verify=wrong_issuer)
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url.replace("https", "http") + "/healthz")
    finally:
        server.stop()
