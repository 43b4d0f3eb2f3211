"""SOQL syntax: text -> :class:`SelectQuery` (no schema needed).

The grammar is Salesforce's for the subset the sandbox serves::

    SELECT (COUNT() | field {, field}) FROM object      (field: Name or Parent.Name)
    [WHERE condition] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] {, ...}]
    [LIMIT n] [OFFSET m]

    condition := [NOT] unit {AND unit} | [NOT] unit {OR unit}
    unit      := ( condition ) | field op value | field [NOT] IN (value {, value})
                 | field LIKE string

Like Salesforce, AND and OR at the same level need parentheses, and NOT only starts a
condition (``a AND NOT b`` must be written ``a AND (NOT b)``).
"""

from __future__ import annotations

from sync.sandbox.soql.errors import SoqlError
from sync.sandbox.soql.lexer import Kind, Token, tokenize
from sync.sandbox.soql.nodes import (
    And,
    Comparison,
    Condition,
    Literal,
    Name,
    Not,
    Or,
    OrderItem,
    SelectQuery,
)

KEYWORDS = frozenset(
    {
        "AND", "ASC", "BY", "DESC", "EXCLUDES", "FALSE", "FIRST", "FOR", "FROM", "GROUP",
        "HAVING", "IN", "INCLUDES", "LAST", "LIKE", "LIMIT", "NOT", "NULL", "NULLS",
        "OFFSET", "OR", "ORDER", "SELECT", "TRUE", "TYPEOF", "USING", "WHERE", "WITH",
    }
)  # fmt: skip
# Relative date literals: name -> whether it takes ":n".
DATE_LITERALS = {
    "TODAY": False,
    "YESTERDAY": False,
    "TOMORROW": False,
    "LAST_N_DAYS": True,
    "NEXT_N_DAYS": True,
    "N_DAYS_AGO": True,
}
_MAX_N = 10_000  # days; also keeps date arithmetic inside the year range
MAX_QUERY_LENGTH = 100_000  # Salesforce's limit on the length of a SOQL statement
_MAX_DEPTH = 100  # nested parentheses and NOTs; deeper is refused, not a RecursionError
_MAX_INT = 2**31 - 1  # LIMIT and OFFSET are Java ints in Salesforce's parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- token helpers -----------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not Kind.EOF:
            self.i += 1
        return token

    def is_word(self, *words: str, token: Token | None = None) -> bool:
        token = token or self.tok
        return token.kind is Kind.IDENT and token.text.upper() in words

    def unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.tok
        return SoqlError(
            "MALFORMED_QUERY", f"unexpected token: {token.shown()}", text=self.text, pos=token.pos
        )

    def unsupported(self, what: str, token: Token) -> SoqlError:
        return SoqlError(
            "MALFORMED_QUERY",
            f"{what} not supported by the sandbox CRM: {token.shown()}",
            text=self.text,
            pos=token.pos,
        )

    def expect_word(self, word: str) -> Token:
        if not self.is_word(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: Kind) -> Token:
        if self.tok.kind is not kind:
            raise self.unexpected()
        return self.advance()

    def name(self, what: str, *, dotted: bool = False) -> Name:
        token = self.tok
        if token.kind is not Kind.IDENT or token.text.upper() in KEYWORDS:
            raise self.unexpected()
        if "." in token.text and not dotted:
            raise self.unsupported(f"relationship {what}s are", token)
        self.advance()
        return Name(token.text, token.pos)

    # -- clauses -----------------------------------------------------------------------

    def query(self) -> SelectQuery:
        self.expect_word("SELECT")
        fields, count_only = self.select_list()
        self.expect_word("FROM")
        obj = self.name("object")
        where = None
        if self.is_word("WHERE"):
            self.advance()
            where = self.condition()
        order_by: tuple[OrderItem, ...] = ()
        if self.is_word("ORDER"):
            self.advance()
            self.expect_word("BY")
            order_by = self.order_list()
        limit = offset = None
        if self.is_word("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.is_word("OFFSET"):
            self.advance()
            offset = self.integer()
        if self.tok.kind is not Kind.EOF:
            raise self.unexpected()
        return SelectQuery(self.text, fields, count_only, obj, where, order_by, limit, offset)

    def select_list(self) -> tuple[tuple[Name, ...], bool]:
        fields: list[Name] = []
        count: Token | None = None
        while True:
            token = self.tok
            if token.kind is Kind.LPAREN:
                raise self.unsupported("subqueries are", token)
            if self.is_word("TYPEOF"):
                raise self.unsupported("TYPEOF is", token)
            if token.kind is Kind.IDENT and self.peek().kind is Kind.LPAREN:
                if token.text.upper() == "COUNT" and self.peek(2).kind is Kind.RPAREN:
                    count = token
                    self.i += 3
                else:
                    raise self.unsupported("aggregate and function calls are", token)
            else:
                # child-to-parent fields (Account.Name) are selectable; filters and
                # ORDER BY take the object's own fields only
                fields.append(self.name("field", dotted=True))
            if self.tok.kind is not Kind.COMMA:
                break
            self.advance()
        if count is not None and fields:
            raise SoqlError(
                "MALFORMED_QUERY",
                "COUNT() cannot be selected together with fields",
                text=self.text,
                pos=count.pos,
            )
        return tuple(fields), count is not None

    def order_list(self) -> tuple[OrderItem, ...]:
        items = []
        while True:
            field = self.name("field")
            descending = False
            if self.is_word("ASC", "DESC"):
                descending = self.advance().text.upper() == "DESC"
            nulls_first = None
            if self.is_word("NULLS"):
                self.advance()
                if not self.is_word("FIRST", "LAST"):
                    raise self.unexpected()
                nulls_first = self.advance().text.upper() == "FIRST"
            items.append(OrderItem(field, descending, nulls_first))
            if self.tok.kind is not Kind.COMMA:
                return tuple(items)
            self.advance()

    def integer(self) -> int:
        token = self.tok
        if token.kind is not Kind.NUMBER or not token.text.isdigit():
            raise self.unexpected()
        if int(token.text) > _MAX_INT:
            raise SoqlError(
                "MALFORMED_QUERY",
                f"number too large: {token.text} (at most {_MAX_INT})",
                text=self.text,
                pos=token.pos,
            )
        self.advance()
        return int(token.text)

    # -- conditions --------------------------------------------------------------------

    def condition(self) -> Condition:
        first = self.unit(allow_not=True)
        operands = [first]
        joiner: str | None = None
        while self.is_word("AND", "OR"):
            word = self.tok.text.upper()
            if joiner is None:
                joiner = word
            elif word != joiner:
                # Salesforce refuses to guess the precedence of mixed AND/OR.
                raise self.unexpected()
            self.advance()
            operands.append(self.unit(allow_not=False))
        if joiner is None:
            return first
        return And(tuple(operands)) if joiner == "AND" else Or(tuple(operands))

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise SoqlError(
                "MALFORMED_QUERY",
                f"conditions nested more than {_MAX_DEPTH} levels deep",
                text=self.text,
                pos=self.tok.pos,
            )

    def unit(self, *, allow_not: bool) -> Condition:
        if self.is_word("NOT"):
            if not allow_not:
                raise self.unexpected()
            self.advance()
            self.nest()
            negated = Not(self.unit(allow_not=False))
            self.depth -= 1
            return negated
        if self.tok.kind is Kind.LPAREN:
            self.advance()
            self.nest()
            inner = self.condition()
            self.expect(Kind.RPAREN)
            self.depth -= 1
            return inner
        field = self.name("field")
        token = self.tok
        if token.kind is Kind.OP:
            self.advance()
            op = "!=" if token.text == "<>" else token.text
            return Comparison(field, op, self.value(), token.pos)
        if self.is_word("LIKE"):
            self.advance()
            return Comparison(field, "LIKE", self.value(), token.pos)
        if self.is_word("IN"):
            self.advance()
            return Comparison(field, "IN", self.value_list(), token.pos)
        if self.is_word("NOT") and self.is_word("IN", token=self.peek()):
            self.i += 2
            return Comparison(field, "NOT IN", self.value_list(), token.pos)
        if self.is_word("INCLUDES", "EXCLUDES"):
            raise self.unsupported("INCLUDES and EXCLUDES are", token)
        raise self.unexpected()

    def value_list(self) -> tuple[Literal, ...]:
        self.expect(Kind.LPAREN)
        if self.is_word("SELECT"):
            raise self.unsupported("semi-join subqueries are", self.tok)
        values = [self.value()]
        while self.tok.kind is Kind.COMMA:
            self.advance()
            values.append(self.value())
        self.expect(Kind.RPAREN)
        return tuple(values)

    def value(self) -> Literal:
        token = self.tok
        if token.kind is Kind.STRING:
            self.advance()
            return Literal(
                "string", token.value, token.text, token.pos, like=token.like,
                like_only=token.like_only,
            )  # fmt: skip
        if token.kind in (Kind.NUMBER, Kind.DATE, Kind.DATETIME):
            self.advance()
            return Literal(token.kind.name.lower(), token.text, token.text, token.pos)
        if token.kind is not Kind.IDENT:
            raise self.unexpected()
        word = token.text.upper()
        if word in ("TRUE", "FALSE"):
            self.advance()
            return Literal("boolean", word == "TRUE", token.text, token.pos)
        if word == "NULL":
            self.advance()
            return Literal("null", None, token.text, token.pos)
        if word not in DATE_LITERALS:
            raise self.unexpected()
        self.advance()
        if not DATE_LITERALS[word]:
            return Literal("date_literal", word, token.text, token.pos)
        if self.tok.kind is not Kind.COLON:
            raise self.unexpected()
        self.advance()
        number = self.tok
        if number.kind is not Kind.NUMBER or not number.text.isdigit():
            raise self.unexpected()
        self.advance()
        n = int(number.text)
        if n > _MAX_N:
            raise SoqlError(
                "MALFORMED_QUERY",
                f"{word}:{n}: the number of days must be at most {_MAX_N}",
                text=self.text,
                pos=number.pos,
            )
        return Literal("date_literal", word, f"{token.text}:{number.text}", token.pos, n=n)


def parse(text: str) -> SelectQuery:
    """Parse a SOQL SELECT.

    Raises:
        SoqlError: MALFORMED_QUERY, naming the unexpected token, for text that is not
            SOQL or uses a part of SOQL the sandbox does not serve (relationship
            queries, subqueries, aggregates other than COUNT(), GROUP BY, ...).
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise SoqlError(
            "MALFORMED_QUERY",
            f"SOQL statements cannot be longer than {MAX_QUERY_LENGTH} characters",
        )
    return _Parser(text).query()
