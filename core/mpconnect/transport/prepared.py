"""POSTs of new bodies to one URL, the request prepared once per session.

``requests`` prepares every call anew: the session's and the call's settings merged, the
URL parsed and quoted, the headers checked, the environment's proxies and CA bundle
looked up. An upload thread sends thousands of batches to the same URL with the same
headers, and that preparation cost about as much CPU as the TLS of a 300 kB body.
:class:`PreparedPost` prepares the request once, through the session (its headers,
authentication and hooks apply as to any request), reads the environment's settings once,
and sends each body through the session's adapter as ``Session.send`` does: the same
exceptions, the same response, no redirect followed. Cookies keep working: those a server
sets are kept in the session, and while the session holds any, each post goes the whole
way through ``Session.request`` so that they are sent back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.hooks import dispatch_hook


class PreparedPost:
    """POST bodies to ``url`` through ``session``; one per session (and so per thread).

    :param session: the session whose adapters, headers, authentication, hooks and cookies
        apply.
    :param url: where to post, without the query string (``params`` holds it).
    :param params: the query string's parameters, the same for every post.
    :param headers: headers besides the session's, the same for every post.
    :param verify: TLS verification (a CA bundle's path, or True), as ``Session.request``
        takes it.
    :param timeout: seconds to wait for a connection and for each read.
    """

    def __init__(
        self,
        session: requests.Session,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        timeout: float,
    ) -> None:
        self.session = session
        self.url = url
        self.params = dict(params or {})
        self.headers = dict(headers or {})
        self.verify = verify
        self.timeout = timeout
        self._template = session.prepare_request(
            requests.Request("POST", url, params=self.params, headers=self.headers, data=b"")
        )
        prepared_url = self._template.url or url
        self._adapter = session.get_adapter(prepared_url)
        self._settings: dict[str, Any] = session.merge_environment_settings(
            prepared_url, {}, False, verify, None
        )

    def __repr__(self) -> str:
        return f"<PreparedPost {self.url}>"

    def post(self, body: bytes) -> requests.Response:
        """Send ``body`` and return the answer, its content read.

        :raises requests.RequestException: as ``Session.request`` raises it.
        """
        if self.session.cookies:
            return self.session.request(
                "POST",
                self.url,
                params=self.params,
                data=body,
                headers=self.headers,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=False,
            )
        request = self._template.copy()
        request.body = body
        request.headers["Content-Length"] = str(len(body))
        response = self._adapter.send(request, timeout=self.timeout, **self._settings)
        response = dispatch_hook(
            "response", request.hooks, response, timeout=self.timeout, **self._settings
        )
        if response.cookies:
            self.session.cookies.update(response.cookies)
        response.content  # noqa: B018 (read the body, as Session.send does)
        return response


def cached_post(
    posts: dict[str, PreparedPost], session: requests.Session, url: str, **options: Any
) -> PreparedPost:
    """The post to ``url`` kept in ``posts`` (one thread's), prepared on first use with
    ``options`` (:class:`PreparedPost`'s keywords, the same at every use of ``url``)."""
    post = posts.get(url)
    if post is None:
        post = posts[url] = PreparedPost(session, url, **options)
    return post
