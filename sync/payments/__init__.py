"""Payment gateways: card details in, a token out.

A card number and CVC are exchanged for a token, and only the token, the brand, the last
four digits and the expiry go any further.

The embedded default is :class:`~sync.payments.gateway.TestGateway`; a real gateway plugs
in through ``BILLING_SYNC_PAYMENT_GATEWAY`` (see :func:`~sync.payments.gateway.load_gateway`).
"""

from sync.payments.gateway import (
    CardDeclinedError,
    CardDetails,
    CardError,
    CardToken,
    PaymentGateway,
    TestGateway,
    load_gateway,
)

__all__ = [
    "CardDeclinedError",
    "CardDetails",
    "CardError",
    "CardToken",
    "PaymentGateway",
    "TestGateway",
    "load_gateway",
]
