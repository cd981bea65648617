"""The redactor every error message passes through: what it removes and what it keeps."""

from __future__ import annotations

import pytest

from mpconnect.redact import redact, remember_secret


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Invalid API key provided: sk_live_51HaBcDeF0123", "Invalid API key provided: ***"),
        ("key sk_test_4eC39HqLyjWDarjtT1zdp7dc refused", "key *** refused"),
        ("restricted rk_live_abcDEF123 expired", "restricted *** expired"),
        ("webhook whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw bad", "webhook *** bad"),
        ("sent Authorization: Bearer eyJhbGciOi.J9.x-y_z", "sent Authorization: ***"),
        ("Bearer eyJhbGciOi.J9.x-y_z was refused", "Bearer *** was refused"),
        ("header Basic dXNlcjpodW50ZXIy rejected", "header Basic *** rejected"),
        ("Authorization: Token 0123456789abcdef\nHost: x", "Authorization: ***\nHost: x"),
        (
            "{'Authorization': 'Token abc', 'Accept': 'json'}",
            "{'Authorization': '***', 'Accept': 'json'}",
        ),
        ('{"client_secret": "s3cr3t", "name": "acme"}', '{"client_secret": "***", "name": "acme"}'),
        (
            "GET https://h.example/v1?api_key=abc123&page=2",
            "GET https://h.example/v1?api_key=***&page=2",
        ),
        (
            "https://h.example/login?user=bob&password=hunter2#x",
            "https://h.example/login?user=bob&password=***#x",
        ),
        ("https://h.example/cb?token=tok_abc", "https://h.example/cb?token=***"),
        ("postgres://svc:pa55w0rd@db.example:5432/app", "postgres://svc:***@db.example:5432/app"),
        ("connect(password='hunter2', host='db')", "connect(password='***', host='db')"),
    ],
)
def test_known_shapes_are_removed(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "Basic authentication failed for user bob",
        "HTTP 401: author=alice, authors=2",
        "Connection to api.stripe.com timed out. (connect timeout=30)",
        "VaultSettings(api_key=SecretStr('**********'), region='eu')",
        "the primary key: id (sources.x.settings.key_field)",
        "https://api.example.com/v1/items?page=2&limit=100",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_a_remembered_secret_is_removed_in_every_spelling() -> None:
    remember_secret("Zq7 wibble/secret+value")

    shown = redact(
        "raw Zq7 wibble/secret+value, form Zq7+wibble%2Fsecret%2Bvalue, "
        "path Zq7%20wibble%2Fsecret%2Bvalue"
    )

    assert shown == "raw ***, form ***, path ***"


def test_extra_values_are_removed_for_one_call_only() -> None:
    assert redact("token-of-this-client here", ["token-of-this-client"]) == "*** here"
    assert redact("token-of-this-client here") == "token-of-this-client here"


def test_a_very_short_secret_is_not_searched_for_in_every_text() -> None:
    remember_secret("ab")

    assert redact("a table about tabs") == "a table about tabs"
