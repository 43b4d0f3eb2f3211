"""Invoice PDFs, generated with fpdf2 from the mirrored invoice and its lines.

The PDF uses the standard Helvetica font and uncompressed content streams: the file
stays small, needs no font files on the server, and its text (the invoice number,
amounts) can be found by any PDF text extractor and by a plain byte search. Helvetica
covers Latin-1, so other characters from the CRM are transliterated or replaced.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from fpdf import FPDF
from fpdf.enums import TableCellFillMode, XPos, YPos
from fpdf.fonts import FontFace

from sync.clock import utc_now
from sync.portal.formatting import day, money, quantity
from sync.portal.views import AccountView, InvoiceDetail

_REPLACEMENTS = {
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u2122": "(TM)",
    "\u20ac": "EUR",
}


def pdf_text(value: object) -> str:
    """``value`` as text Helvetica can draw: Latin-1, control characters removed."""
    text = "" if value is None else str(value)
    text = "".join(_REPLACEMENTS.get(ch, ch) for ch in text)
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if ch in "\n\t":
            out.append(" ")
        elif unicodedata.category(ch).startswith("C"):
            continue
        elif ord(ch) < 256:
            out.append(ch)
        else:
            decomposed = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode()
            out.append(decomposed or "?")
    return "".join(out)


def invoice_filename(detail: InvoiceDetail) -> str:
    """A safe download name such as ``invoice-INV-1001.pdf``."""
    safe = "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in detail.invoice.number
    )
    return f"invoice-{safe.strip('-') or 'document'}.pdf"


def render_invoice_pdf(
    detail: InvoiceDetail, account: AccountView, *, now: dt.datetime | None = None
) -> bytes:
    """The invoice as a PDF document.

    Args:
        detail: the invoice and its lines (already scoped to the signed-in account).
        account: the billed account, for the address block.
        now: generation time printed in the footer (default: the current time).

    Returns:
        The PDF file's bytes (they start with ``%PDF-``).
    """
    now = now or utc_now()
    inv = detail.invoice
    number = pdf_text(inv.number)

    pdf = FPDF(format="Letter", unit="mm")
    pdf.set_compression(False)
    pdf.set_creation_date(now)
    pdf.set_title(f"Invoice {number}")
    pdf.set_subject(f"Invoice {number} for {pdf_text(account.name)}")
    pdf.set_author("Billing Portal")
    pdf.set_creator("billing-sync")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, f"Invoice {number}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    pdf.ln(2)

    left = [pdf_text(account.name), *(pdf_text(line) for line in account.address_lines)]
    if account.billing_email:
        left.append(pdf_text(account.billing_email))
    right = [
        ("Invoice number", number),
        ("Invoice date", day(inv.invoice_date)),
        ("Due date", day(inv.due_date)),
        ("Status", pdf_text(inv.status or "-")),
        ("Payment status", pdf_text(inv.payment_status or "-")),
    ]
    top = pdf.get_y()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 5, "Bill to", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    for address_line in left:
        pdf.multi_cell(95, 5, address_line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    bottom_left = pdf.get_y()
    pdf.set_y(top)
    for label, value in right:
        pdf.set_x(120)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(35, 5, label)
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 5, pdf_text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(bottom_left, pdf.get_y()) + 6)

    headings = FontFace(emphasis="BOLD", fill_color=(235, 238, 242))
    with pdf.table(
        col_widths=(100, 25, 35, 30),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=headings,
        cell_fill_color=(248, 249, 251),
        cell_fill_mode=TableCellFillMode.ROWS,
        line_height=6,
    ) as table:
        table.row(["Description", "Quantity", "Amount", "Tax"])
        for line in detail.lines:
            table.row(
                [
                    pdf_text(line.description or "-"),
                    pdf_text(quantity(line.quantity)),
                    pdf_text(money(line.amount)),
                    pdf_text(money(line.tax_amount)),
                ]
            )
        if not detail.lines:
            table.row(["No line items", "", "", ""])

    pdf.ln(4)
    totals = [
        ("Subtotal", money(detail.subtotal)),
        ("Tax", money(detail.tax_total)),
        ("Invoice total", money(inv.total_amount)),
        ("Amount due", money(inv.total_due)),
    ]
    for label, value in totals:
        pdf.set_x(120)
        bold = label in ("Invoice total", "Amount due")
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(45, 6, label)
        pdf.cell(0, 6, pdf_text(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.ln(8)
    pdf.set_font("Helvetica", "", 8)
    pdf.set_text_color(90, 90, 90)
    note = "Generated by the Billing Portal from the billing records on " + day(now) + "."
    if not inv.has_attachment:
        note += " This is a historical invoice: it has no original attachment."
    pdf.multi_cell(0, 4, pdf_text(note))
    return bytes(pdf.output())
