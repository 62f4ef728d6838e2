"""A webhook URL is a secret (Slack's and most others' carry their token in the path):
stored encrypted with Fernet (the `cryptography` library: AES-128-CBC and HMAC-SHA256),
shown back only masked.

The key is CONTROLPLANE_NOTIFY_KEY (a Fernet key, `Fernet.generate_key()`), or else
derived from SECRET_KEY with HKDF-SHA256 under a label of its own, so that the embedded
default needs nothing more. Changing the key (or SECRET_KEY without it) makes stored URLs
unreadable: their deliveries fail saying so, and the channel must be made again.
Whoever would rather keep the URL out of the database names an environment variable
instead (`env:NAME`), read at delivery.
"""

import base64
import os
import re
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

ENV_PREFIX = "env:"
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")
HKDF_INFO = b"controlplane-notification-target/v1"


class SecretUnavailable(Exception):
    """A stored URL this process cannot read (another key), or an unset variable."""


def _fernet():
    if settings.NOTIFY_KEY:
        return Fernet(settings.NOTIFY_KEY.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(text):
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token):
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnavailable(
            "The stored webhook URL cannot be decrypted with this process's key "
            "(CONTROLPLANE_NOTIFY_KEY or SECRET_KEY changed): make the channel again."
        ) from exc


def from_environment(target):
    name = target.removeprefix(ENV_PREFIX)
    value = os.environ.get(name, "")
    if not value:
        raise SecretUnavailable(f"The environment variable {name} is not set in this process.")
    return value


def mask(url):
    """What a page may show of a URL: its scheme and host, never its path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"
