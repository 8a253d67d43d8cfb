"""Distinguished names as RFC 4514 writes them: parsing, never string splitting.

gRPC hands the server a client certificate's subject as OpenSSL prints it
(RFC 2253/4514: most specific RDN first, special characters escaped with a
backslash, bytes beyond ASCII as `\\XX`). Splitting that text on commas
reads an escaped comma as a separator: a certificate issued for
`/CN=dashboard/O=x,CN=ops-console` has the subject
`O=x\\,CN=ops-console,CN=dashboard`, whose split yields a "CN=ops-console"
that the certificate does not have (issue 18.2: a READ certificate got
CONTROL). Parsing decides escapes first, so a value is only ever a value.

The parser is strict: anything RFC 4514 does not allow (an unescaped `"`,
`;`, `<` or `>`, a bad attribute type, a dangling backslash, bytes that are
not UTF-8) is a ValueError, and the caller gets no role.
"""

from __future__ import annotations

import re

# One attribute: its type (upper case) and its value (escapes decoded).
Attribute = tuple[str, str]
# An RDN is a set of attributes (usually one); a DN is a sequence of RDNs.
RDN = frozenset[Attribute]
DN = tuple[RDN, ...]

_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*")
_ESCAPABLE = ',+"\\<>;= #'
_UNESCAPED_FORBIDDEN = '"\\<>;'
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_HEX_VALUE = re.compile(r"#(?:[0-9A-Fa-f]{2})+")


def parse_dn(text: str) -> DN:
    """The RDNs of `text`, in its order; an empty text is the empty DN.

    Raises:
        ValueError: `text` is not a distinguished name in RFC 4514 syntax.
    """
    rdns: list[RDN] = []
    attributes: list[Attribute] = []
    position = 0
    while text:
        equals = text.find("=", position)
        kind = text[position:equals] if equals >= 0 else ""
        if not _TYPE.fullmatch(kind):
            raise ValueError(f"not a distinguished name: {text!r} (attribute type {kind!r})")
        value, position = _value(text, equals + 1)
        attributes.append((kind.upper(), value))
        if position == len(text) or text[position] == ",":
            rdns.append(frozenset(attributes))
            attributes = []
        if position == len(text):
            break
        position += 1  # past the "," or "+" that ended the value
        if position == len(text):
            raise ValueError(f"not a distinguished name: {text!r} (ends with a separator)")
    return tuple(rdns)


def common_names(dn: DN) -> list[str]:
    """Every CN value of `dn`, in order (a certificate may carry several)."""
    return [value for rdn in dn for kind, value in sorted(rdn) if kind in ("CN", "2.5.4.3")]


def _value(text: str, start: int) -> tuple[str, int]:
    """Decode the attribute value that starts at `start`; returns it and the
    position of the unescaped "," or "+" that ends it (or the text's end)."""
    if text.startswith("#", start):  # a hex-encoded BER value: kept as written
        hex_value = _HEX_VALUE.match(text, start)
        end = hex_value.end() if hex_value else start
        if hex_value is None or (end < len(text) and text[end] not in ",+"):
            raise ValueError(f"not a distinguished name: {text!r} (bad hex value)")
        return hex_value.group().upper(), end
    out = bytearray()
    position = start
    while position < len(text) and text[position] not in ",+":
        char = text[position]
        if char == "\\":
            pair = text[position + 1 : position + 3]
            if _HEX_PAIR.fullmatch(pair):
                out.append(int(pair, 16))
                position += 3
                continue
            if position + 1 < len(text) and text[position + 1] in _ESCAPABLE:
                out += text[position + 1].encode()
                position += 2
                continue
            raise ValueError(f"not a distinguished name: {text!r} (bad escape)")
        if char in _UNESCAPED_FORBIDDEN or char == "\x00":
            raise ValueError(f"not a distinguished name: {text!r} (unescaped {char!r})")
        out += char.encode()
        position += 1
    try:
        return out.decode("utf-8"), position
    except UnicodeDecodeError:
        raise ValueError(f"not a distinguished name: {text!r} (not UTF-8)") from None
