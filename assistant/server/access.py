"""Who may reach the server, decided the way Jupyter decides it.

Three checks, each on every HTTP request and websocket handshake:

- **Host allowlist.** A page on a domain the attacker controls can re-point
  that domain at 127.0.0.1 (DNS rebinding) and then talk to the server as a
  same-origin page; its requests still carry the attacker's name in
  ``Host``. Only the names the operator serves under pass: loopback names,
  the listen address, the TLS certificate's names and ``--allow-host``. A
  ``Host`` that is an IP literal cannot come from rebinding (no name was
  resolved), so the address the client actually reached on this socket is
  accepted too: phones on the LAN can open ``http://192.168.1.20:8765/``.
- **Origin.** Browsers say which page opened a socket or sent a POST; only
  this server's own origin and ``--allow-origin`` pass. Clients that are not
  browsers send no Origin and are judged by their key alone.
- **Credentials.** The access key (``x-goog-api-key``, ``?key=`` or a bearer
  token), or an ephemeral token (``?access_token=``, ``Authorization: Token``, or
  ``x-goog-api-key: auth_tokens/...``). With no key configured (loopback
  only, or ``--no-auth``) every client is let in and sessions are counted
  per client address. The HttpOnly cookie that ``GET /?key=`` sets lets the
  page mint ephemeral tokens and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers, MultipleValuesError

from assistant.errors import AssistantError
from assistant.server.tokens import TOKEN_PREFIX

logger = logging.getLogger("assistant.server")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
COOKIE_PREFIX = "assistant-key-"


class BadRequest(AssistantError, ValueError):
    """A request this server cannot interpret; the message is the project's 400 body."""


def single_header(headers: Headers, name: str) -> str | None:
    """The one value of header ``name``; ``BadRequest`` when a client sent it twice."""
    try:
        return headers.get(name)
    except MultipleValuesError:
        raise BadRequest(f"more than one {name} header") from None


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, lower case, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(address: str) -> bool:
    """True when listening on ``address`` reaches this machine only."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def certificate_names(cert: Path | str) -> set[str]:
    """DNS and IP names of a PEM certificate's subjectAltName, to serve under without --allow-host."""
    try:
        from cryptography import x509
    except ModuleNotFoundError:
        logger.warning("cryptography is missing: the TLS certificate's names are not allowed hosts; use --allow-host")
        return set()
    certificate = x509.load_pem_x509_certificate(Path(cert).read_bytes())
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {name.lower() for name in names.get_values_for_type(x509.DNSName)} | {
        str(address) for address in names.get_values_for_type(x509.IPAddress)
    }


def default_allowed_hosts(listen: str, cert: Path | str | None, extra: Iterable[str]) -> frozenset[str]:
    """Loopback names, the listen address (unless a wildcard), the certificate's names and ``extra``."""
    hosts = set(LOOPBACK_NAMES) | {host_name(name) if ":" in name else name.lower() for name in extra}
    if listen not in WILDCARD_ADDRESSES:
        hosts.add(listen.lower())
    if cert is not None:
        hosts |= certificate_names(cert)
    return frozenset(hosts)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented: the access key, an ephemeral token name, or nothing."""

    key: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The server's rules for hosts, origins and keys."""

    api_key: str | None
    allowed_hosts: frozenset[str]
    allowed_origins: tuple[str, ...]
    cookie_name: str = COOKIE_PREFIX + "0"

    def host_allowed(self, host_header: str | None, local_address: str | None) -> bool:
        """``Host`` names a host the operator serves under, or is the IP literal the client reached."""
        if "*" in self.allowed_hosts:
            return True
        if not host_header:
            return False
        name = host_name(host_header)
        if name in self.allowed_hosts:
            return True
        return _is_ip(name) and local_address is not None and _same_ip(name, local_address)

    def origin_allowed(self, origin: str | None, host_header: str | None, scheme: str) -> bool:
        """No Origin (not a browser), this server's own origin, or one given with ``--allow-origin``.

        The caller has checked ``Host`` already, so "same origin" cannot be a
        rebinding domain's name.
        """
        if origin is None or "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        return bool(host_header) and parts.scheme == scheme and parts.netloc.lower() == (host_header or "").lower()

    def presented(self, headers: Headers, query: str) -> Credentials:
        """The credentials a request carries, in the places the SDKs and browsers put them."""
        params = parse_qs(query)
        token = params.get("access_token", [None])[0]
        authorization = single_header(headers, "authorization") or ""
        scheme, _, value = authorization.partition(" ")
        if not token and scheme.lower() == "token":
            token = value.strip()
        key = single_header(headers, "x-goog-api-key") or params.get("key", [None])[0]
        if not key and scheme.lower() == "bearer":
            key = value.strip()
        if key and key.startswith(TOKEN_PREFIX):
            token, key = token or key, None
        return Credentials(key=key or None, token=token or None)

    def key_valid(self, key: str | None) -> bool:
        if self.api_key is None or key is None:
            return False
        return hmac.compare_digest(key.encode(), self.api_key.encode())

    def key_label(self) -> str:
        """Who a valid key's sessions count as: a label derived from the key, never the key, for shared counters."""
        assert self.api_key is not None
        return "key:" + hmac.new(self.api_key.encode(), b"assistant session label", hashlib.sha256).hexdigest()[:16]

    def cookie_value(self) -> str:
        """What the page's HttpOnly cookie holds: derived from the key, so the key itself never rests there."""
        assert self.api_key is not None
        return hmac.new(self.api_key.encode(), b"assistant page cookie", hashlib.sha256).hexdigest()

    def page_cookie_valid(self, headers: Headers) -> bool:
        """The request carries the cookie ``GET /?key=`` set: the page may mint tokens, nothing more.

        Websockets do not accept the cookie: a page connects with an
        ephemeral token, so what a page can leak expires within minutes.
        """
        if self.api_key is None:
            return False
        cookies = SimpleCookie()
        for raw in headers.get_all("cookie"):
            try:
                cookies.load(raw)
            except CookieError:
                continue
        morsel = cookies.get(self.cookie_name)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.cookie_value().encode())


def _same_ip(name: str, address: str) -> bool:
    try:
        ours = ipaddress.ip_address(address)
        theirs = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(ours, ipaddress.IPv6Address) and ours.ipv4_mapped is not None:
        ours = ours.ipv4_mapped
    return ours == theirs
