"""TLS material for the simulations that must be reached over https (PagerDuty).

The `pagerduty` client refuses any base URL that is not ``https://`` (its ``url`` setter
raises ``UrlError``), so `PagerDutySim` serves TLS on loopback with the certificate below,
issued for ``localhost``, ``127.0.0.1`` and ``::1`` by a throwaway test CA. Clients trust it
through `CA_PEM` (`write_files` puts everything in files, as ``ssl`` and uvicorn want).

**Test-only.** The private key is public on purpose: it protects nothing but loopback
traffic between the tests (or ``rollbot demo``) and a simulation. Never use it elsewhere.
Generated with OpenSSL 3.0 (EC P-256), valid 2024-01-01 to 2124-01-01.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBcDCCARWgAwIBAgIBATAKBggqhkjOPQQDAjAeMRwwGgYDVQQDDBNyb2xsYm90
IHNpbSB0ZXN0IENBMCAXDTI0MDEwMTAwMDAwMFoYDzIxMjQwMTAxMDAwMDAwWjAe
MRwwGgYDVQQDDBNyb2xsYm90IHNpbSB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZI
zj0DAQcDQgAEv3qmgbgg1Lvzshn1NI91Y9hx8A1EPx7KRrwSirr9KKvBvjhqra3H
Qs02MTSIMgMHKWqqEaaRExga6G2lem9Et6NCMEAwDwYDVR0TAQH/BAUwAwEB/zAO
BgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFBR1CU0Tb0tEHrVR3c8IsokpB/YFMAoG
CCqGSM49BAMCA0kAMEYCIQDUtnVl2A/KRvJXPasaBRJrSRxGbuCnT5LcA4SvOXqC
wgIhAMdwMbaWr54w7+9YfAXTXTPMLrEwAw3EYf7Gx9sGRNu+
-----END CERTIFICATE-----
"""

CERT_PEM = """\
-----BEGIN CERTIFICATE-----
MIIByDCCAW6gAwIBAgIBAjAKBggqhkjOPQQDAjAeMRwwGgYDVQQDDBNyb2xsYm90
IHNpbSB0ZXN0IENBMCAXDTI0MDEwMTAwMDAwMFoYDzIxMjQwMTAxMDAwMDAwWjAU
MRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASc
7597XkHKHnQJXzzmmhoWfVdNSf3gum7E/Cup/jXX5ILzHW4fQMtFKasIsqAFmJHj
L07hAYq8ZdJBN3NZz0iso4GkMIGhMCwGA1UdEQQlMCOCCWxvY2FsaG9zdIcEfwAA
AYcQAAAAAAAAAAAAAAAAAAAAATAMBgNVHRMBAf8EAjAAMA4GA1UdDwEB/wQEAwIH
gDATBgNVHSUEDDAKBggrBgEFBQcDATAfBgNVHSMEGDAWgBQUdQlNE29LRB61Ud3P
CLKJKQf2BTAdBgNVHQ4EFgQUw2Ggc5eTGK3TQSmtB0w0895s3GkwCgYIKoZIzj0E
AwIDSAAwRQIhAIA9CvXhLkUF2vyKwxtKgbewNZLAuEIrldjSlfqJFzO+AiASj5lD
rKEdiP15L0olo9JY4955EduCrC5k0WtS0Yltdw==
-----END CERTIFICATE-----
"""

KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjyfGizwT6O9SU5iC
9RUSXplLyyVDabBitFQBsco58ZmhRANCAASc7597XkHKHnQJXzzmmhoWfVdNSf3g
um7E/Cup/jXX5ILzHW4fQMtFKasIsqAFmJHjL07hAYq8ZdJBN3NZz0is
-----END PRIVATE KEY-----
"""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: str  # the test CA, for clients
    cert_file: str  # server certificate followed by the CA (full chain)
    key_file: str  # server private key


def write_files(directory: str | None = None) -> TlsFiles:
    """Write the CA, the server chain and key to `directory` (a new temp dir by default)."""
    where = Path(directory or tempfile.mkdtemp(prefix="rollbot-sim-tls-"))
    ca, cert, key = where / "ca.pem", where / "server.pem", where / "server.key"
    ca.write_text(CA_PEM)
    cert.write_text(CERT_PEM + CA_PEM)
    key.write_text(KEY_PEM)
    key.chmod(0o600)
    return TlsFiles(str(ca), str(cert), str(key))
