"""Invoice PDFs from mirrored data: real PDF bytes with findable text."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from sync.portal.pdf import invoice_filename, pdf_text, render_invoice_pdf
from sync.portal.views import AccountView, InvoiceDetail, InvoiceLineView, InvoiceView

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)


def _detail(name: str | None = "INV-2001", *, attachment: bool = True) -> InvoiceDetail:
    invoice = InvoiceView(
        sfid="a0D000000000001AAA",
        name=name,
        invoice_date=dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.UTC),
        due_date=dt.date(2026, 5, 1),
        total_amount=Decimal("1200.00"),
        total_due=Decimal("200.00"),
        status="Approved",
        payment_status="Partially Paid",
        has_attachment=attachment,
    )
    lines = [
        InvoiceLineView(
            "a0E000000000001AAA",
            "Seat \u2014 Caf\u00e9 \u65e5\u672c",
            Decimal(10),
            Decimal("1000.00"),
            Decimal("80.00"),
        ),
        InvoiceLineView("a0E000000000002AAA", None, None, Decimal("120.00"), None),
    ]
    return InvoiceDetail(invoice, lines)


ACCOUNT = AccountView(
    "001000000000001AAA",
    "Acme Corp",
    None,
    "ap@acme.example",
    "1 Main St\nSuite 2",
    "Provo",
    "UT",
    "84601",
    "USA",
)


def _texts(pdf: bytes) -> list[bytes]:
    return re.findall(rb"\((.*?)\) Tj", pdf)


def test_given_an_invoice_when_rendered_then_a_pdf_with_its_number_and_amounts():
    pdf = render_invoice_pdf(_detail(), ACCOUNT, now=NOW)

    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    texts = _texts(pdf)
    assert b"Invoice INV-2001" in texts
    assert b"$1,200.00" in texts and b"$200.00" in texts and b"$1,120.00" in texts
    assert b"Suite 2" in texts and b"Partially Paid" in texts
    assert b"Seat - Caf\xe9 ??" in texts  # Latin-1 kept, the rest transliterated or replaced


def test_given_a_historical_invoice_when_rendered_then_the_pdf_says_it_has_no_attachment():
    pdf = render_invoice_pdf(_detail(attachment=False), ACCOUNT, now=NOW)

    assert b"no original attachment" in pdf


def test_given_odd_names_when_a_filename_is_made_then_it_is_safe():
    assert invoice_filename(_detail('INV/2001 "x"')) == "invoice-INV-2001--x.pdf"
    assert invoice_filename(_detail("\u65e5\u672c")) == "invoice-document.pdf"
    assert invoice_filename(_detail(None)) == "invoice-a0D000000000001AAA.pdf"


def test_given_control_characters_when_made_pdf_text_then_they_are_gone():
    assert pdf_text("a\x00b\tc\u2122") == "ab c(TM)"
    assert pdf_text(None) == ""
