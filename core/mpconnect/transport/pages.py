"""Walking a paginated JSON list page by page, refusing pages that lead back to a page
already read (a pagination that would never end)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mpconnect.transport.source_error import SourceHttpError

if TYPE_CHECKING:
    from mpconnect.transport.http import JsonHttpClient

#: What a ``next_page`` callback returns: query parameters for the next request to the
#: same path, a URL (absolute, or a path) to fetch as given, or None when done.
NextPage = Callable[[Any], "Mapping[str, Any] | str | None"]


def walk_pages(
    client: JsonHttpClient,
    path: str,
    params: Mapping[str, Any] | None,
    *,
    next_page: NextPage,
    items: str | Callable[[Any], list[Any]],
) -> Iterator[Any]:
    """Yield every item of a paginated list; see :meth:`JsonHttpClient.paginate`."""
    request_path: str = path
    request_params: dict[str, Any] = dict(params or {})
    fetched: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    pages = 0
    while True:
        body = client.get_json(request_path, request_params or None)
        pages += 1
        fetched[page_key(client, request_path, request_params)] = pages
        where = client.display_url(client.url_for(request_path), request_params or None)
        page: Any
        if callable(items):
            page = items(body)
        else:
            page = body.get(items) if isinstance(body, Mapping) else None
        if not isinstance(page, list):
            what = f"list under {items!r}" if isinstance(items, str) else "list"
            raise SourceHttpError(
                f"{client.name}: GET {where}: page {pages} holds no {what}",
                status=200,
                method="GET",
                url=where,
                server_message="",
            )
        yield from page
        following = next_page(body)
        if following is None:
            return
        if isinstance(following, str):
            next_path, next_params = following, {}
        else:
            next_path, next_params = request_path, {**request_params, **following}
        seen = fetched.get(page_key(client, next_path, next_params))
        if seen == pages:
            raise SourceHttpError(
                f"{client.name}: GET {where}: page {pages} points to itself as the next "
                "page; the pagination does not advance",
                status=200,
                method="GET",
                url=where,
                server_message="",
            )
        if seen is not None:
            again = client.display_url(client.url_for(next_path), next_params or None)
            raise SourceHttpError(
                f"{client.name}: GET {where}: page {pages} points back to page {seen} "
                f"({again}) as the next page; the pagination goes round in a circle",
                status=200,
                method="GET",
                url=where,
                server_message="",
            )
        request_path, request_params = next_path, next_params


def page_key(
    client: JsonHttpClient, path: str, params: Mapping[str, Any]
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What identifies a page: its URL without query, and every query pair, sorted."""
    parts = urlsplit(client.url_for(path))
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    pairs += parse_qsl(urlencode(params, doseq=True), keep_blank_values=True)
    return parts._replace(query="", fragment="").geturl(), tuple(sorted(pairs))
