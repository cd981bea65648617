"""The request bodies both Mixpanel clients build, read back with the standard library:
the ingestion sink's gzip (ISA-L) and the Datasets form's base64."""

from __future__ import annotations

import base64
import gzip
import zlib
from urllib.parse import parse_qs

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mpconnect.mixpanel.datasets import encode_import_form
from mpconnect.mixpanel.gzip_body import gzip_body

RECORD = st.fixed_dictionaries(
    {
        "event": st.text(min_size=1, max_size=20),
        "properties": st.dictionaries(
            st.text(max_size=10),
            st.one_of(
                st.text(max_size=40),
                st.integers(-(2**63), 2**63 - 1),
                st.floats(allow_nan=False, allow_infinity=False),
            ),
            max_size=6,
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(RECORD, max_size=50), st.integers(min_value=0, max_value=9))
def test_a_gzip_body_inflates_with_the_standard_library_to_the_exact_records(
    records: list[dict], level: int
) -> None:
    payload = orjson.dumps(records)
    body = gzip_body(payload, level)

    assert gzip.decompress(body) == payload
    assert zlib.decompressobj(wbits=31).decompress(body) == payload  # as the local server reads
    assert orjson.loads(gzip.decompress(body)) == records


def test_a_large_batch_compresses_and_is_reproducible() -> None:
    events = [{"event": "Signed up", "properties": {"distinct_id": f"u{n}"}} for n in range(2000)]
    payload = orjson.dumps(events)
    body = gzip_body(payload)

    assert gzip.decompress(body) == payload
    assert len(body) < len(payload) / 4
    assert gzip_body(payload) == body  # no time in the header


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_the_form_data_is_the_standard_base64_of_the_payload(payload: bytes) -> None:
    body = encode_import_form(payload, "DATA SET/1", "57646")

    fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
    assert base64.b64decode(fields["data"][0], validate=True) == payload
    assert fields["dataset_id"] == ["DATA SET/1"] and fields["dataset_version"] == ["57646"]
    assert body.startswith(b"data=" + base64.b64encode(payload).replace(b"+", b"%2B") + b"&")
