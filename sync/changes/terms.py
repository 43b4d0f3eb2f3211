"""The terms of use shown above the Accept form, and their version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sync.changes.rules import terms_version
from sync.settings import SettingsError

BUNDLED_TERMS = Path(__file__).resolve().parent / "terms.txt"


@dataclass(frozen=True)
class Terms:
    """The text people accept, and the version recorded with each acceptance."""

    text: str
    version: str

    @property
    def paragraphs(self) -> list[str]:
        """The text split at blank lines, for display."""
        return [p.strip() for p in self.text.split("\n\n") if p.strip()]


def load_terms(path: str | None) -> Terms:
    """The terms from ``BILLING_SYNC_TERMS_FILE`` (``path``), or the bundled ones.

    Raises:
        SettingsError: the file cannot be read or is empty.
    """
    source = Path(path) if path else BUNDLED_TERMS
    try:
        text = source.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"BILLING_SYNC_TERMS_FILE={source}: cannot be read ({exc})") from exc
    if not text:
        raise SettingsError(f"BILLING_SYNC_TERMS_FILE={source}: the file is empty")
    return Terms(text=text, version=terms_version(text))
