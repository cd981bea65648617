"""The local Stripe API as a product: ``mpconnect serve stripe``.

:class:`StripeLocalServer` serves a generated, consistent Stripe account (``--customers
N`` customers with their subscriptions, invoices, charges, refunds and disputes) on
127.0.0.1 and prints the ``[sources.billing]`` table that points the ``stripe``
connector at it. The server itself is :class:`~mpconnect_stripe.localserver.api.StripeAPI`
(the one the connector's tests use), its data :mod:`mpconnect_stripe.localserver.world`.
Importing this package does not import aiohttp; starting the server does.
"""

from __future__ import annotations

from typing import ClassVar

from mpconnect import LocalServer, ServedSource, ServeOptions

__all__ = ["StripeLocalServer"]


class StripeLocalServer(LocalServer):
    """``mpconnect serve stripe``: a local Stripe API over generated data."""

    name: ClassVar[str] = "stripe"
    connector: ClassVar[str] = "stripe"
    summary: ClassVar[str] = "a local Stripe API"
    source_name: ClassVar[str] = "billing"
    dataset_id: ClassVar[str] = "STRIPE"
    size_option: ClassVar[str] = "customers"
    size_help: ClassVar[str] = (
        "Customers to generate, with their subscriptions, invoices, charges, refunds and disputes."
    )
    default_size: ClassVar[int] = 200
    default_port: ClassVar[int] = 12111
    requires: ClassVar[tuple[str, ...]] = ("aiohttp",)
    install_hint: ClassVar[str | None] = 'pip install "mpconnect[stripe,server]"'

    def start(self, options: ServeOptions) -> ServedSource:
        """Generate the account from ``options.seed`` and serve it on ``options.port``."""
        from .api import TEST_KEY, StripeAPI
        from .generate import generate

        world = generate(options.seed, options.size)
        api = StripeAPI(world).start(host=options.host, port=options.port)
        contents = ", ".join(f"{len(objects)} {name}" for name, objects in world.lists().items())
        return ServedSource(
            url=api.url,
            settings={"api_key": "${STRIPE_API_KEY}", "api_base": api.url},
            environment={"STRIPE_API_KEY": TEST_KEY},
            contents=contents,
            stop=api.stop,
        )
