"""HTTP transport shared by Mixpanel's clients and the connectors' source clients.

``http`` (JSON over HTTP for sources), ``retry`` (backoff, Retry-After, the retry budget),
``failures`` (why a server cannot be reached, TLS and redirect refusals) and
``responses`` (reading an error answer's text and a JSON body).
"""
