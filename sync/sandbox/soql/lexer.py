"""SOQL tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sync.sandbox.soql.errors import SoqlError


class Kind(StrEnum):
    """Token kinds."""

    IDENT = "identifier"
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    OP = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    COLON = ":"
    EOF = "<EOF>"


@dataclass(frozen=True, slots=True)
class Token:
    r"""One token.

    For strings, ``value`` is the unescaped text, ``like`` the same literal as a SQLite
    LIKE pattern (escape character backslash) and ``like_only`` tells that it used an
    escape valid in LIKE only (``\%`` or ``\_``).
    """

    kind: Kind
    text: str  # as written in the query
    pos: int
    value: str = ""
    like: str = ""
    like_only: bool = False

    def shown(self) -> str:
        """The token as error messages name it."""
        return "<EOF>" if self.kind is Kind.EOF else f"'{self.text}'"


_SPACE = re.compile(r"\s+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_.:+-]")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_PUNCT = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA, ":": Kind.COLON}
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


def _string(text: str, start: int) -> tuple[Token, int]:
    """Lex the quoted string starting at ``text[start] == "'"``."""
    value: list[str] = []
    like: list[str] = []
    like_only = False
    i = start + 1
    while True:
        if i >= len(text):
            raise SoqlError(
                "MALFORMED_QUERY",
                "unexpected token: <EOF>: unterminated string",
                text=text,
                pos=start,
            )
        char = text[i]
        if char == "'":
            raw = text[start : i + 1]
            token = Token(Kind.STRING, raw, start, "".join(value), "".join(like), like_only)
            return token, i + 1
        if char != "\\":
            value.append(char)
            # In a LIKE pattern an unescaped % or _ stays a wildcard.
            like.append(char)
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code.lower() in _ESCAPES:
            plain = _ESCAPES[code.lower()] if code in "nrtbfNRTBF" else code
            value.append(plain)
            like.append("\\\\" if plain == "\\" else plain)
            i += 2
        elif code in ("%", "_"):
            like_only = True
            value.append(code)
            like.append("\\" + code)
            i += 2
        elif code in ("u", "U") and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
            plain = chr(int(text[i + 2 : i + 6], 16))
            value.append(plain)
            like.append({"%": "\\%", "_": "\\_", "\\": "\\\\"}.get(plain, plain))
            i += 6
        else:
            end = text.find("'", i + 2)
            literal = text[start : end + 1 if end >= 0 else len(text)]
            raise SoqlError(
                "MALFORMED_QUERY",
                f"Invalid string literal {literal}. Illegal character sequence "
                f"'\\{code}' in string literal.",
                text=text,
                pos=start,
            )


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an EOF token.

    Raises:
        SoqlError: MALFORMED_QUERY for a character or literal SOQL does not have.
    """
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while True:
        space = _SPACE.match(text, i)
        if space:
            i = space.end()
        if i >= n:
            tokens.append(Token(Kind.EOF, "", n))
            return tokens
        char = text[i]
        if char == "'":
            token, i = _string(text, i)
            tokens.append(token)
            continue
        if char in _PUNCT:
            tokens.append(Token(_PUNCT[char], char, i))
            i += 1
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op:
            tokens.append(Token(Kind.OP, op, i))
            i += len(op)
            continue
        ident = _IDENT.match(text, i)
        if ident:
            tokens.append(Token(Kind.IDENT, ident.group(), i))
            i = ident.end()
            continue
        for kind, pattern in (
            (Kind.DATETIME, _DATETIME),
            (Kind.DATE, _DATE),
            (Kind.NUMBER, _NUMBER),
        ):
            match = pattern.match(text, i)
            if match and not _glued(text, match.end(), kind):
                tokens.append(Token(kind, match.group(), i, match.group()))
                i = match.end()
                break
        else:
            word = re.compile(r"[^\s(),']+").match(text, i)
            shown = word.group() if word else char
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}'", text=text, pos=i)


def _glued(text: str, end: int, kind: Kind) -> bool:
    """True when the literal ending at ``end`` runs on into more word characters."""
    if end >= len(text):
        return False
    if kind is Kind.NUMBER:
        return bool(re.match(r"[A-Za-z0-9_.:-]", text[end]))
    return bool(_WORD_CHAR.match(text[end]))
