"""The subset of SOQL the local Salesforce API understands, parsed and run over a fake org.

Grammar::

    SELECT COUNT() | path {, path} FROM object [WHERE condition]
        [ORDER BY path [ASC|DESC] {, path [ASC|DESC]}] [LIMIT n]
    path       := Field | Relationship.Field          (one parent hop, as the connector uses)
    condition  := term {OR term};  term := factor {AND factor};  factor := NOT factor
                | ( condition ) | path op literal | path [NOT] IN ( literal {, literal} )
                | path LIKE 'pattern'
    op         := = | != | <> | < | <= | > | >=
    literal    := 'text' | number | true | false | null | YYYY-MM-DD | YYYY-MM-DDThh:mm:ssZ

Errors are raised as :class:`SoqlError` with Salesforce's error codes: ``MALFORMED_QUERY``
for syntax, ``INVALID_TYPE`` for an unknown object, ``INVALID_FIELD`` for an unknown field
or a literal of the wrong type. As in SOQL, ``field != value`` is true for null fields and
string comparisons ignore case. ``ORDER BY`` puts nulls first, as SOQL's ascending default
does. A query sees live rows; run as ``queryAll`` (``Query.all_rows``) it sees the recycle
bin's rows too (``IsDeleted = true``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .org import FieldDef, Org, Row, Table

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""",
    re.VERBOSE,
)
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "like",
    "limit",
    "order",
    "by",
    "true",
    "false",
    "null",
    "count",
    "group",
    "offset",
}
_TEXT_TYPES = {"id", "reference", "string", "picklist", "email", "phone", "textarea", "url"}
_NUMBER_TYPES = {"double", "currency", "percent", "int"}


class SoqlError(Exception):
    """A query Salesforce would refuse: ``code`` is its errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Column:
    """A selected or filtered path, resolved against the org."""

    path: str
    field: FieldDef | None
    relationship: FieldDef | None
    targets: list[Table]
    get: Callable[[Row], Any]

    @property
    def name(self) -> str:
        """The canonical field name (last segment)."""
        return self.path.rsplit(".", 1)[-1]

    @property
    def type(self) -> str:
        """The field's type."""
        return self.field.type if self.field else "string"


@dataclass
class Query:
    """A parsed and resolved query."""

    text: str
    table: Table
    columns: list[Column] | None  # None: SELECT COUNT()
    where: Callable[[Row], bool] | None
    limit: int | None
    order: list[tuple[Column, bool]] = field(default_factory=list)
    all_rows: bool = False

    def rows(self) -> Iterator[Row]:
        """The matching rows, in ``ORDER BY`` order, else Id order (live rows first)."""
        source: Iterator[Row] = iter(self.table)
        if self.all_rows:
            source = itertools.chain(source, self.table.deleted())
        if self.where is not None:
            source = filter(self.where, source)
        for column, descending in reversed(self.order):
            source = iter(sorted(source, key=_sorter(column), reverse=descending))
        if self.limit is not None:
            source = itertools.islice(source, self.limit)
        yield from source


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {text[pos : pos + 10]!r}")
        kind = match.lastgroup or ""
        value = match.group()
        pos = match.end()
        if kind == "space":
            continue
        if kind == "name" and value.lower() in _KEYWORDS:
            kind = "keyword"
            value = value.lower()
        out.append((kind, value))
    return out


class _Parser:
    def __init__(self, text: str, org: Org) -> None:
        self.text = text
        self.org = org
        self.tokens = _tokens(text)
        self.pos = 0
        self.table: Table | None = None

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        token_kind, token_value = self.peek()
        if token_kind != kind or (value is not None and token_value != value):
            shown = token_value or "end of query"
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}'")
        self.pos += 1
        return token_value

    def accept(self, kind: str, value: str | None = None) -> bool:
        token_kind, token_value = self.peek()
        if token_kind == kind and (value is None or token_value == value):
            self.pos += 1
            return True
        return False

    def parse(self) -> Query:
        self.take("keyword", "select")
        paths: list[str] | None = []
        if self.peek() == ("keyword", "count"):
            self.pos += 1
            self.take("punct", "(")
            self.take("punct", ")")
            paths = None
        else:
            assert paths is not None
            paths.append(self.take("name"))
            while self.accept("punct", ","):
                paths.append(self.take("name"))
        self.take("keyword", "from")
        name = self.take("name")
        table = self.org.table(name)
        if table is None or "." in name:
            raise SoqlError(
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name.",
            )
        self.table = table
        columns = None if paths is None else [self.column(p) for p in paths]
        where = None
        if self.accept("keyword", "where"):
            where = self.condition()
        order = []
        if self.accept("keyword", "order"):
            self.take("keyword", "by")
            while True:
                column = self.column(self.take("name"))
                descending = False
                if self.peek()[0] == "name" and self.peek()[1].lower() in ("asc", "desc"):
                    descending = self.take("name").lower() == "desc"
                order.append((column, descending))
                if not self.accept("punct", ","):
                    break
        limit = None
        if self.accept("keyword", "limit"):
            limit = int(self.take("number"))
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek()[1]}'")
        return Query(self.text, table, columns, where, limit, order)

    def column(self, path: str) -> Column:
        assert self.table is not None
        table = self.table
        parts = path.split(".")
        if len(parts) == 1:
            field = table.field(path)
            if field is None:
                raise SoqlError(
                    "INVALID_FIELD", f"No such column '{path}' on entity '{table.name}'."
                )
            canonical = field.name
            return Column(canonical, field, None, [table], lambda row: row.get(canonical))
        if len(parts) > 2:
            raise SoqlError("MALFORMED_QUERY", "only one relationship hop is supported here")
        relationship = table.relationship(parts[0])
        if relationship is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{parts[0]}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r'.",
            )
        targets = [self.org[name] for name in relationship.reference_to]
        fields = [t.field(parts[1]) for t in targets]
        found = next((f for f in fields if f is not None), None)
        if found is None:
            raise SoqlError(
                "INVALID_FIELD", f"No such column '{parts[1]}' on entity '{targets[0].name}'."
            )
        org = self.org
        key = relationship.name

        def get(row: Row) -> Any:
            parent = org.by_id(row.get(key))
            if parent is None:
                return None
            parent_table, parent_row = parent
            field = parent_table.field(parts[1])
            return parent_row.get(field.name) if field else None

        path = f"{relationship.relationship_name}.{found.name}"
        return Column(path, found, relationship, targets, get)

    def condition(self) -> Callable[[Row], bool]:
        terms = [self.term()]
        while self.accept("keyword", "or"):
            terms.append(self.term())
        if len(terms) == 1:
            return terms[0]
        return lambda row: any(t(row) for t in terms)

    def term(self) -> Callable[[Row], bool]:
        factors = [self.factor()]
        while self.accept("keyword", "and"):
            factors.append(self.factor())
        if len(factors) == 1:
            return factors[0]
        return lambda row: all(f(row) for f in factors)

    def factor(self) -> Callable[[Row], bool]:
        if self.accept("keyword", "not"):
            inner = self.factor()
            return lambda row: not inner(row)
        if self.accept("punct", "("):
            inner = self.condition()
            self.take("punct", ")")
            return inner
        column = self.column(self.take("name"))
        if self.accept("keyword", "like"):
            pattern = self.literal(column)
            regex = re.compile(
                "^" + re.escape(str(pattern)).replace("%", ".*").replace("_", ".") + "$",
                re.IGNORECASE | re.DOTALL,
            )

            def like(row: Row) -> bool:
                value = column.get(row)
                return isinstance(value, str) and regex.match(value) is not None

            return like
        negate = self.accept("keyword", "not")
        if self.accept("keyword", "in"):
            self.take("punct", "(")
            values = [self.literal(column)]
            while self.accept("punct", ","):
                values.append(self.literal(column))
            self.take("punct", ")")
            keys = {_key(v) for v in values}
            if negate:
                return lambda row: _key(column.get(row)) not in keys
            return lambda row: _key(column.get(row)) in keys
        if negate:
            raise SoqlError("MALFORMED_QUERY", "unexpected token: 'NOT'")
        op = self.take("op")
        value = self.literal(column)
        return lambda row: _compare(column.get(row), op, value)

    def literal(self, column: Column) -> Any:
        kind, text = self.peek()
        self.pos += 1
        if kind == "keyword" and text == "null":
            return None
        if kind == "keyword" and text in ("true", "false"):
            value: Any = text == "true"
            expected = {"boolean"}
        elif kind == "string":
            value = re.sub(r"\\(.)", r"\1", text[1:-1])
            expected = _TEXT_TYPES
        elif kind == "number":
            value = float(text)
            expected = _NUMBER_TYPES
        elif kind == "date":
            value = date.fromisoformat(text)
            expected = {"date"}
        elif kind == "datetime":
            value = datetime.fromisoformat(text)
            expected = {"datetime"}
        else:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text or 'end of query'}'")
        if column.type not in expected:
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{column.name}' must be of type "
                f"{column.type} and should not be enclosed in quotes"
                if kind == "string"
                else f"value of filter criterion for field '{column.name}' must be of type "
                f"{column.type}",
            )
        return value


def _sorter(column: Column) -> Callable[[Row], tuple[bool, Any]]:
    def key(row: Row) -> tuple[bool, Any]:
        value = column.get(row)
        return (value is not None, _key(value) if value is not None else 0)

    return key


def _key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("!=", "<>"):
        return _key(left) != _key(right)
    if op == "=":
        return _key(left) == _key(right)
    if left is None or right is None:
        return False
    left, right = _key(left), _key(right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def parse(text: str, org: Org) -> Query:
    """Parse and resolve ``text`` against ``org``.

    :raises SoqlError: as Salesforce would refuse the query.
    """
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "empty query")
    return _Parser(text, org).parse()
