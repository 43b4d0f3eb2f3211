"""`billing-sync keys generate`: the JWT bearer flow's RSA key and self-signed certificate.

The certificate (``billing-sync.crt``) is uploaded to the External Client App ("Use
digital signatures"); the key (``billing-sync.key``, mode 0600) stays with the service
as ``SALESFORCE_PRIVATE_KEY_FILE``. The key is written with its final mode from the
first byte (``os.open`` with 0600), never widened afterwards.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sync.settings import Settings

KEY_NAME = "billing-sync.key"
CERT_NAME = "billing-sync.crt"
KEY_BITS = 2048


@dataclass(frozen=True)
class KeyPair:
    """Where a generated key and its certificate were written."""

    key_file: Path
    cert_file: Path


def generate_key_pair(
    directory: Path,
    *,
    days: int = 730,
    common_name: str = "billing-sync",
    now: datetime | None = None,
    force: bool = False,
) -> KeyPair:
    """Write a new RSA key (mode 0600) and its self-signed X.509 certificate.

    Raises:
        FileExistsError: a key or certificate is already there and ``force`` is off.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = directory / KEY_NAME, directory / CERT_NAME
    if not force:
        for path in (key_file, cert_file):
            if path.exists():
                raise FileExistsError(f"{path} exists (use --force to replace it)")
    moment = now or datetime.now(UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - timedelta(minutes=5))
        .not_valid_after(moment + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if force:
        key_file.unlink(missing_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return KeyPair(key_file, cert_file)


def readable_by_others(path: Path) -> bool:
    """True when the group or others may read or write ``path``."""
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def keys_command(args: argparse.Namespace, settings: Settings) -> int:
    """``billing-sync keys generate [--dir DIR]``; returns the exit code."""
    try:
        pair = generate_key_pair(Path(args.dir), days=args.days, force=args.force)
    except (FileExistsError, OSError) as exc:
        sys.stderr.write(f"billing-sync keys: {exc}\n")
        return 1
    sys.stdout.write(
        f"Wrote the private key {pair.key_file} (mode 0600) and the certificate "
        f"{pair.cert_file} (valid {args.days} days).\n"
        "Next:\n"
        f"  1. Upload {pair.cert_file} to the External Client App: OAuth settings > "
        "Enable JWT Bearer Flow > certificate.\n"
        f"  2. Set SALESFORCE_PRIVATE_KEY_FILE={pair.key_file.resolve()} for the service "
        "(keep the key on the service's machines only).\n"
        "  3. Run `billing-sync connect check`.\n"
    )
    if readable_by_others(pair.key_file):
        sys.stderr.write(f"warning: {pair.key_file} is readable by group or others\n")
    return 0
