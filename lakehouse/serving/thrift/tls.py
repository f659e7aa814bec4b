"""TLS for the Thrift server: a local CA and a server certificate made once with the JDK's ``keytool``,
and the clients' side (Python's ``ssl`` context, beeline's JDBC URL).

``lakehouse thrift start`` (with ``serving.tls: true``, the default) calls :func:`ensure_tls`, which
writes, the first time only, into ``<state dir>/tls/`` (folder mode 700, files mode 600):

- ``server.p12``: the server's private key and certificate chain (PKCS12; HiveServer2's
  ``hive.server2.keystore.path``), its password in ``keystore.password`` (read by the server's main
  class from the file, so it never shows on a command line);
- ``ca.pem``: the CA certificate the project's Python clients verify the server with (PyHive,
  ``lakehouse sql``, Superset through ``SSL_CERT_FILE``); ``server.pem``: the server's certificate;
- ``truststore.p12`` and ``truststore.password``: the same CA for beeline / JDBC
  (``sslTrustStore=...;trustStorePassword=...``). A truststore holds no secret; its password only
  satisfies the JDBC driver;
- ``tls.json``: the names the certificate is valid for.

The certificate names ``localhost``, ``127.0.0.1`` and the bind address. Keys are EC P-256; the CA is valid ten
years, the server certificate 825 days (``serverAuth``). The CA's private key is deleted once it has signed the
server's certificate: this CA vouches for this one server and can sign nothing else; a new certificate
(expired, or another host) means a new CA (``rm -r <state dir>/tls`` and restart, then hand out the new
``ca.pem``). A company CA replaces these files instead (``docs/serving.md``, "TLS").
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.serving.thrift.auth import write_private

#: The HTTP path of the Thrift service (``hive.server2.thrift.http.path``).
HTTP_PATH = "cliservice"
#: Never offered: anything older than TLS 1.2 (``hive.ssl.protocol.blacklist``).
PROTOCOL_BLACKLIST = "SSLv2,SSLv2Hello,SSLv3,TLSv1,TLSv1.1"
CA_DAYS = 3650
SERVER_DAYS = 825


class TlsError(RuntimeError):
    """The TLS files could not be made or do not fit the server; the message says why."""


@dataclass(frozen=True)
class TlsFiles:
    root: Path

    @property
    def keystore(self) -> Path:
        return self.root / "server.p12"

    @property
    def keystore_password(self) -> Path:
        return self.root / "keystore.password"

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def certificate(self) -> Path:
        return self.root / "server.pem"

    @property
    def truststore(self) -> Path:
        return self.root / "truststore.p12"

    @property
    def truststore_password(self) -> Path:
        return self.root / "truststore.password"

    @property
    def info(self) -> Path:
        return self.root / "tls.json"


def tls_files(state_dir: Path) -> TlsFiles:
    return TlsFiles(Path(state_dir) / "tls")


def certificate_names(host: str) -> list[str]:
    """What the server certificate is valid for: localhost, 127.0.0.1 and the bind address."""
    names = ["localhost", "127.0.0.1"]
    if host not in names and host not in ("0.0.0.0", "::"):
        names.append(host)
    return names


def _san(names: list[str]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            entries.append(f"ip:{name}")
        except ValueError:
            entries.append(f"dns:{name}")
    return ",".join(entries)


def _keytool() -> str:
    from lakehouse.jars import jdk_tool

    keytool = jdk_tool("keytool")
    if not keytool:
        raise TlsError(
            "keytool was not found: the Thrift server's certificate is made with the JDK's keytool; "
            "install a JDK 17 or set JAVA_HOME (or set serving.tls: false on a trusted network)"
        )
    return keytool


def _run(args: list[str], cwd: Path) -> None:
    # A short-lived JVM per step: the C1 compiler and the serial collector start it fastest.
    jvm = ["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-Xshare:auto"]
    proc = subprocess.run([_keytool(), *jvm, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise TlsError(f"keytool {args[0]} failed ({proc.returncode}): {(proc.stdout + proc.stderr).strip()[-1500:]}")


def _generate(files: TlsFiles, names: list[str]) -> None:
    files.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(files.root, 0o700)
    # Built in a private temporary folder next to the final one, then moved in: a failed run leaves nothing.
    with tempfile.TemporaryDirectory(prefix=".tls.", dir=files.root) as tmp:
        work = Path(tmp)
        for name in ("ca.password", "keystore.password", "truststore.password"):
            write_private(work / name, secrets.token_urlsafe(24))
        ca = ["-keystore", "ca.p12", "-storepass:file", "ca.password"]
        server = ["-keystore", "server.p12", "-storepass:file", "keystore.password"]
        ec = ["-keyalg", "EC", "-groupname", "secp256r1", "-sigalg", "SHA256withECDSA", "-storetype", "PKCS12"]
        _run(["-genkeypair", "-alias", "ca", *ec, *ca, "-dname", "CN=HeyMax lakehouse Thrift local CA",
              "-ext", "bc:c", "-ext", "ku:c=keyCertSign,cRLSign", "-validity", str(CA_DAYS)], work)  # fmt: skip
        _run(["-exportcert", "-rfc", "-alias", "ca", *ca, "-file", "ca.pem"], work)
        _run(["-genkeypair", "-alias", "server", *ec, *server, "-dname", "CN=localhost",
              "-validity", str(SERVER_DAYS)], work)  # fmt: skip
        _run(["-certreq", "-alias", "server", *server, "-file", "server.csr"], work)
        _run(["-gencert", "-alias", "ca", *ca, "-infile", "server.csr", "-outfile", "server.pem", "-rfc",
              "-sigalg", "SHA256withECDSA", "-validity", str(SERVER_DAYS), "-ext", f"san={_san(names)}",
              "-ext", "ku:c=digitalSignature", "-ext", "eku=serverAuth"], work)  # fmt: skip
        # The reply is accepted against the CA as a trusted entry, which is removed afterwards: the server
        # entry's chain carries the CA certificate.
        _run(["-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", *server], work)
        _run(["-importcert", "-noprompt", "-alias", "server", "-file", "server.pem", *server], work)
        _run(["-delete", "-alias", "ca", *server], work)
        _run(["-importcert", "-noprompt", "-alias", "lakehouse-thrift-ca", "-file", "ca.pem", "-storetype", "PKCS12",
              "-keystore", "truststore.p12", "-storepass:file", "truststore.password"], work)  # fmt: skip
        info = {
            "names": names,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "ca": "local, generated by lakehouse thrift start; its private key was deleted after signing",
        }
        write_private(work / "tls.json", json.dumps(info, indent=2) + "\n")
        for name in (
            "truststore.p12",
            "truststore.password",
            "ca.pem",
            "server.pem",
            "tls.json",
            "keystore.password",
            "server.p12",
        ):  # the keystore last: its presence means "done"
            os.chmod(work / name, 0o600)
            os.replace(work / name, files.root / name)
        # ca.p12 (the CA's private key), its password and the request go with the temporary folder.


def ensure_tls(state_dir: Path, host: str) -> TlsFiles:
    """The server's TLS files, made on the first call (idempotent); a certificate that does not name
    ``host`` is an error, not silently replaced (clients trust the CA that exists)."""
    files = tls_files(state_dir)
    if not files.keystore.exists():
        _generate(files, certificate_names(host))
        return files
    missing = [p.name for p in (files.keystore_password, files.ca) if not p.exists()]
    if missing:
        raise TlsError(f"{files.root} has server.p12 but not {', '.join(missing)}: see docs/serving.md, TLS")
    try:
        names = json.loads(files.info.read_text())["names"]
    except (OSError, ValueError, KeyError):
        names = None  # a company certificate: its names are its issuer's business
    if names is not None and host not in names and host not in ("0.0.0.0", "::"):
        raise TlsError(f"the server certificate in {files.root} names {', '.join(names)}, not {host}: "
                       f"remove {files.root} to make a new CA and certificate (clients then need the new "
                       f"{files.ca.name}), or install a certificate for {host} (docs/serving.md, TLS)")  # fmt: skip
    for path in files.root.iterdir():
        if path.is_file() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    return files


def client_context(ca_file: Path) -> ssl.SSLContext:
    """Verifies the server against ``ca_file`` only, host name included; TLS 1.2 or newer."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = True
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def jdbc_url(host: str, port: int, files: TlsFiles | None, database: str = "default") -> str:
    """beeline's URL; with TLS the truststore password is read from its file by the shell (``$(cat ...)``)."""
    url = f"jdbc:hive2://{host}:{port}/{database}"
    if files is None:
        return url
    return (f"{url};transportMode=http;httpPath={HTTP_PATH};ssl=true;sslTrustStore={files.truststore};"
            f"trustStorePassword=$(cat {files.truststore_password})")  # fmt: skip
