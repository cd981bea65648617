"""Logging in to Salesforce: each flow returns a session id and the instance's host.

All flows post to ``login_url`` (default ``https://{domain}.salesforce.com``), so sandboxes
(``domain = "test"``), My Domains (``domain = "acme.my"``) and a local test server
(``login_url = "https://127.0.0.1:8443"``) work alike. The SOAP login is
simple-salesforce's ``SalesforceLogin`` (its ``scratch_url`` is the base URL); the OAuth
flows post to the token endpoint with simple-salesforce's ``token_login``.
"""

from __future__ import annotations

import base64
import time
from urllib.parse import urlsplit

import requests

from mpconnect import SourceError
from mpconnect_salesforce.settings import SalesforceSettings

__all__ = ["login"]

_JWT_LIFETIME = 180


def _secret(value: object) -> str:
    return value.get_secret_value() if value is not None else ""  # type: ignore[attr-defined]


def _host(url: str) -> str:
    parts = urlsplit(url)
    if parts.port in (None, 443):
        return str(parts.hostname)
    return f"{parts.hostname}:{parts.port}"


def _jwt_assertion(settings: SalesforceSettings) -> str:
    import jwt

    if settings.private_key is not None:
        key: str | bytes = settings.private_key.get_secret_value()
    else:
        assert settings.private_key_file is not None
        key = settings.private_key_file.read_bytes()
    claims = {
        "iss": settings.consumer_key,
        "sub": settings.username,
        "aud": f"https://{settings.domain}.salesforce.com",
        "exp": int(time.time()) + _JWT_LIFETIME,
    }
    try:
        return jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError) as exc:
        raise SourceError(
            "Salesforce JWT login: the private key cannot sign (give an RSA private key "
            f"in PEM format): {type(exc).__name__}"
        ) from None


def login(settings: SalesforceSettings, http: requests.Session) -> tuple[str, str]:
    """Log in with the flow the settings select; return ``(session_id, instance host)``.

    :raises SourceError: naming the flow and Salesforce's reason when the login fails.
    """
    from simple_salesforce import SalesforceLogin
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed
    from simple_salesforce.login import token_login

    mode = settings.auth_mode()
    if mode == "session":
        assert settings.instance_url is not None
        return _secret(settings.session_id), _host(settings.instance_url)
    base = settings.base_login_url()
    token_url = f"{base}/services/oauth2/token"
    try:
        if mode == "password":
            return SalesforceLogin(
                username=settings.username,
                password=_secret(settings.password),
                security_token=_secret(settings.security_token),
                sf_version=settings.api_version,
                session=http,
                domain=settings.domain,
                scratch_url=base,
            )
        if mode == "jwt":
            data = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": _jwt_assertion(settings),
            }
            return token_login(
                token_url, data, settings.domain, str(settings.consumer_key), None, None, http
            )

        pair = f"{settings.consumer_key}:{_secret(settings.consumer_secret)}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return token_login(
            token_url,
            {"grant_type": "client_credentials"},
            settings.domain,
            str(settings.consumer_key),
            headers,
            None,
            http,
        )
    except SalesforceAuthenticationFailed as exc:
        raise SourceError(
            f"Salesforce login ({mode}) at {base} failed: {exc.code}: {exc.auth_message}"
        ) from None
