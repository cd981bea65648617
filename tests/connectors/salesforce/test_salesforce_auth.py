"""Logging in (SOAP, JWT bearer, client credentials, a given session), session expiry, secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mpconnect import RunContext, SourceError
from mpconnect.testing import run_connector
from mpconnect_salesforce import SalesforceConnector
from mpconnect_salesforce.localserver.api import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    PASSWORD,
    SECURITY_TOKEN,
    USERNAME,
)

from .conftest import LocalSalesforce
from .expected import is_totals

pytestmark = pytest.mark.timeout(60)


def _key_pair(directory: Path, name: str) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / f"{name}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public


def _oauth(salesforce: LocalSalesforce, **credentials: object) -> dict:
    settings = salesforce.settings(objects=["contacts"], **credentials)
    for key in ("password", "security_token"):
        settings.pop(key)
    return settings


def test_password_and_token_log_in_over_soap(salesforce: LocalSalesforce) -> None:
    collected = run_connector(SalesforceConnector, salesforce.settings(objects=["contacts"]))
    assert len(collected.events) == 60
    assert salesforce.state.logins == {"soap": 1}


def test_a_wrong_password_names_the_flow_and_never_the_secret(
    salesforce: LocalSalesforce,
) -> None:
    with pytest.raises(SourceError) as raised:
        run_connector(SalesforceConnector, salesforce.settings(password="hunter2-wrong"))
    message = str(raised.value)
    assert f"Salesforce login (password) at {salesforce.url} failed: INVALID_LOGIN" in message
    assert "hunter2-wrong" not in message and SECURITY_TOKEN not in message


def test_the_jwt_bearer_flow(salesforce: LocalSalesforce, tmp_path: Path) -> None:
    key_file, public = _key_pair(tmp_path, "server")
    salesforce.state.jwt_public_key = public
    settings = _oauth(salesforce, consumer_key=CONSUMER_KEY, private_key_file=str(key_file))
    collected = run_connector(SalesforceConnector, settings)
    assert len(collected.events) == 60
    assert salesforce.state.logins == {"jwt": 1}


def test_a_jwt_signed_with_the_wrong_key_is_refused(
    salesforce: LocalSalesforce, tmp_path: Path
) -> None:
    _, public = _key_pair(tmp_path, "server")
    other, _ = _key_pair(tmp_path, "other")
    salesforce.state.jwt_public_key = public
    refused = r"login \(jwt\) .* failed: invalid_grant: invalid assertion"
    with pytest.raises(SourceError, match=refused):
        run_connector(
            SalesforceConnector,
            _oauth(salesforce, consumer_key=CONSUMER_KEY, private_key_file=str(other)),
        )


def test_the_client_credentials_flow(salesforce: LocalSalesforce) -> None:
    settings = _oauth(salesforce, consumer_key=CONSUMER_KEY, consumer_secret=CONSUMER_SECRET)
    settings.pop("username")
    collected = run_connector(SalesforceConnector, settings)
    assert len(collected.events) == 60
    assert salesforce.state.logins == {"client_credentials": 1}


def test_an_expired_session_logs_in_again_once_and_the_run_goes_on(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.page_size = 7
    salesforce.state.expire_at = 12  # in the middle of the Contact pages
    collected = run_connector(SalesforceConnector, salesforce.settings())
    assert salesforce.state.logins == {"soap": 2}
    assert len(collected.events_named("Contact Created")) == 60
    assert len([p for p in collected.people if not is_totals(p)]) == 90


def test_an_expired_session_during_bulk_results_logs_in_again(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.expire_at = 12
    collected = run_connector(
        SalesforceConnector,
        salesforce.settings(objects=["contacts"], use_bulk=True, bulk_page_size=5),
    )
    assert salesforce.state.logins == {"soap": 2}
    assert len(collected.events) == 60


def test_a_session_refused_again_after_logging_in_stops_the_run(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.page_size = 7
    salesforce.state.fail(
        "/query/01g",
        status=401,
        code="INVALID_SESSION_ID",
        message="Session expired or invalid",
        times=2,
    )
    with pytest.raises(
        SourceError, match="session expired while reading Contact and logging in again did not help"
    ):
        run_connector(SalesforceConnector, salesforce.settings(objects=["contacts"]))
    assert salesforce.state.logins == {"soap": 2}


def test_a_given_session_works_and_says_plainly_when_it_expires(
    salesforce: LocalSalesforce,
) -> None:
    token = salesforce.state.issue("given")
    settings = {
        "instance_url": salesforce.url,
        "session_id": token,
        "ca_bundle": str(salesforce.ca_path),
        "objects": ["contacts"],
    }
    assert len(run_connector(SalesforceConnector, settings).events) == 60
    salesforce.state.expire_sessions()
    with pytest.raises(SourceError, match="a session_id cannot be renewed"):
        run_connector(SalesforceConnector, settings)


def test_without_the_ca_bundle_tls_verification_fails_clearly(
    salesforce: LocalSalesforce,
) -> None:
    settings = salesforce.settings()
    settings.pop("ca_bundle")
    with pytest.raises(SourceError, match=r"TLS verification failed.*set ca_bundle"):
        run_connector(SalesforceConnector, settings)


def test_secrets_stay_out_of_repr_logs_and_check(
    salesforce: LocalSalesforce, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = SalesforceConnector.Settings(**salesforce.settings())
    connector = SalesforceConnector(settings)
    try:
        report = connector.check(RunContext(source="crm", dataset_id="CRM"))
        for _ in connector.events(RunContext(source="crm", dataset_id="CRM")):
            pass
    finally:
        connector.close()
    shown = repr(settings) + str(settings) + caplog.text + report
    assert PASSWORD not in shown and SECURITY_TOKEN not in shown
    assert salesforce.state.issued and all(token not in shown for token in salesforce.state.issued)
    assert USERNAME in repr(settings)
