"""How TorchServe's frontend reads a form body: Netty's `HttpPostRequestDecoder`, in Python.

Part of the frontend rules (`frontend.request_input`): TorchServe 0.12 hands each field of a
multipart or url-encoded body to the worker as Netty 4.1.53 decodes it, quirks included (a part
without its closing delimiter never becomes a field; a name-less part is a 500). A body Netty
rejects raises `FormError`, which TorchServe answers with 500 `ErrorDataDecoderException`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FILE_TYPE = "application/octet-stream"  # Netty's type for a file part that names none
MULTIPART = "multipart/form-data"
NPE_NAME = (
    'java.lang.NullPointerException: Cannot invoke "io.netty.handler.codec.http.multipart.'
    'Attribute.getValue()" because "nameAttribute" is null'
)
EMPTY_NAME = "java.lang.IllegalArgumentException: empty name"
# Charset.forName's names (lower case) for the charsets a client may name; Java knows more.
JAVA_CHARSETS = {
    *("utf-8", "utf8", "unicode-1-1-utf-8"),
    *("iso-8859-1", "iso8859_1", "iso_8859_1", "latin1", "l1", "iso8859-1", "iso_8859-1"),
    *("8859_1", "cp819", "ibm819", "ibm-819", "819", "csisolatin1", "iso-ir-100"),
    *("us-ascii", "ascii", "us", "iso646-us", "cp367", "ibm367", "646", "default", "ascii7"),
    *("utf-16", "utf_16", "utf16", "unicode", "utf-16be", "utf_16be", "utf-16le", "utf_16le"),
    *("utf-32", "utf_32", "utf32", "utf-32be", "utf-32le"),
    *("windows-1252", "cp1252", "cp5348", "windows-1251", "cp1251", "windows-1250", "cp1250"),
    *("iso-8859-15", "latin9", "iso8859_15", "iso-8859-2", "latin2", "koi8-r", "shift_jis"),
    *("sjis", "euc-jp", "euc-kr", "gb2312", "gbk", "gb18030", "big5", "utf-8-bom"),
}
_LEGAL_CHARSET = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-+:_.]*\Z")
_JAVA_SPACE = set(range(0x00, 0x21)) | set(range(0x7F, 0xA0))  # isISOControl or isWhitespace


class FormError(Exception):
    """Netty rejected the body: TorchServe answers 500 ErrorDataDecoderException(message)."""


@dataclass
class Field:
    """One decoded field: its name, the content type of a file part (None for a plain field),
    and its bytes as they were sent."""

    name: str
    content_type: str | None
    value: bytes


# ---- which decoder ---------------------------------------------------------------------------
def mime_type(content_type: str | None) -> str | None:
    """Netty's `HttpUtil.getMimeType`: the text before the first `;`, as written (untrimmed)."""
    if content_type is None:
        return None
    mime = content_type.split(";", 1)[0] if ";" in content_type else content_type
    return mime if mime or ";" in content_type else None


def multipart_boundary(content_type: str | None) -> tuple[str, str | None] | None:
    """`("--" + boundary, charset or None)` when the body is a multipart form, else None.

    Netty's `isMultipart`: the header starts with "multipart/form-data" (in lower case, as
    written); then `getMultipartDataBoundary`: a `boundary=` among the next two parameters
    (quotes stripped), a `charset=` beside it.
    """
    if content_type is None or not content_type.startswith(MULTIPART):
        return None
    parts = _split_content_type(content_type)
    if not parts[0][: len(MULTIPART)].lower() == MULTIPART:
        return None
    if parts[1][:8].lower() == "boundary":
        boundary_at, charset_at = 1, 2
    elif parts[2][:8].lower() == "boundary":
        boundary_at, charset_at = 2, 1
    else:
        return None
    if "=" not in parts[boundary_at]:
        raise FormError("Needs a boundary value")
    boundary = parts[boundary_at].split("=", 1)[1]
    if boundary.startswith('"'):
        trimmed = boundary.strip()
        if trimmed.endswith('"'):
            boundary = trimmed[1:-1]
    charset = None
    if parts[charset_at][:7].lower() == "charset" and "=" in parts[charset_at]:
        charset = parts[charset_at].split("=", 1)[1]
    return "--" + boundary, charset


def _split_content_type(text: str) -> tuple[str, str, str]:
    """Netty's `splitHeaderContentType`: type and the first two parameters, trimmed."""
    start = _skip_space(text, 0)
    first = text.find(";")
    if first == -1:
        return text, "", ""
    second_start = _skip_space(text, first + 1)
    end = first - 1 if text[first - 1] == " " else first
    second = text.find(";", second_start)
    if second == -1:
        return text[start:end], text[second_start:].rstrip(), ""
    third_start = _skip_space(text, second + 1)
    second_end = second - 1 if text[second - 1] == " " else second
    return text[start:end], text[second_start:second_end], text[third_start:].rstrip()


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


# ---- application/x-www-form-urlencoded -------------------------------------------------------
def urlencoded_fields(body: bytes) -> list[Field]:
    """Netty's `HttpPostStandardRequestDecoder`: `name=value` pairs split on `&`, up to the first
    line end; a pair without `=` is a field only when `&` ends it; names decoded as UTF-8."""
    fields, start, name, at = [], 0, None, 0
    while at < len(body):
        byte = body[at : at + 1]
        at += 1
        if name is None:
            if byte in (b"=", b"&"):
                key = _decode_name(body[start : at - 1])
                if byte == b"&":
                    fields.append(Field(key, None, b""))
                else:
                    name = key
                start = at
        elif byte == b"&":
            fields.append(Field(name, None, _decode_value(body[start : at - 1])))
            name, start = None, at
        elif byte in (b"\r", b"\n"):
            if byte == b"\r" and at < len(body) and body[at : at + 1] != b"\n":
                raise FormError("Bad end of line")
            end = at - 1
            fields.append(Field(name, None, _decode_value(body[start:end])))
            return fields
    if name is not None:
        end = len(body) - 1 if body.endswith(b"\r") else len(body)
        fields.append(Field(name, None, _decode_value(body[start:end])))
    return fields


def _decode_name(raw: bytes) -> str:
    """QueryStringDecoder.decodeComponent on the UTF-8 text; a bad escape is a `Bad string`."""
    text = raw.decode("utf-8", "replace")
    if "%" in text or "+" in text:
        try:
            text = _percent_decode(text.replace("+", " ").encode("utf-8")).decode(
                "utf-8", "replace"
            )
        except ValueError:
            raise FormError(f"Bad string: '{raw.decode('utf-8', 'replace')}'") from None
    if not _attribute_name(text):
        raise FormError(EMPTY_NAME)
    return _attribute_name(text)


def _decode_value(raw: bytes) -> bytes:
    """Netty's `UrlDecoder` on the value's bytes (`+` is a space); its message on a bad escape."""
    out, at = bytearray(), 0
    while at < len(raw):
        byte = raw[at]
        if byte == ord("%"):
            pair = raw[at + 1 : at + 3]
            if len(pair) < 2 or not all(chr(c) in "0123456789abcdefABCDEF" for c in pair):
                shown = raw.decode("utf-8", "replace")
                raise FormError(f"Invalid hex byte at index '{at}' in string: '{shown}'")
            out.append(int(pair, 16))
            at += 3
            continue
        out.append(0x20 if byte == ord("+") else byte)
        at += 1
    return bytes(out)


def _percent_decode(raw: bytes) -> bytes:
    out, at = bytearray(), 0
    while at < len(raw):
        if raw[at] == ord("%"):
            pair = raw[at + 1 : at + 3].decode("latin-1")
            if len(pair) < 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise ValueError(pair)
            out.append(int(pair, 16))
            at += 3
        else:
            out.append(raw[at])
            at += 1
    return bytes(out)


def _attribute_name(name: str) -> str:
    """Netty's `AbstractHttpData` name: CR and tab become spaces, outer space and LF go."""
    return re.sub(r"\n", "", re.sub(r"[\r\t]", " ", name)).strip(" \t\n\x0b\f\r")


# ---- multipart/form-data ---------------------------------------------------------------------
def multipart_fields(body: bytes, delimiter: str, charset: str | None) -> list[Field]:
    """Netty's `HttpPostMultipartRequestDecoder` on a whole body: fields until a delimiter
    cannot be read; the last part counts only when a delimiter line follows its data."""
    encoding = _python_charset(charset or "utf-8")
    reader = _Reader(body, delimiter.encode("utf-8", "replace"), encoding)
    fields = []
    while reader.next_delimiter() == "part":
        headers = reader.part_headers()
        if headers is None:
            break
        data = reader.part_data()
        field = _field(headers, data)
        if data is None:  # no delimiter after the data: Netty waits for more, then stops
            break
        fields.append(field)
    return fields


def _field(headers: dict[str, str], data: bytes | None) -> Field:
    """The checks Netty makes on a part before it reads the data, then the field."""
    filename = headers.get("filename")
    if filename is not None:
        encoding = headers.get("content-transfer-encoding")
        if encoding is not None and encoding.lower() not in ("7bit", "8bit", "binary"):
            raise FormError(f"TransferEncoding Unknown: {encoding.lower()}")
    if "charset" in headers:
        _check_charset(headers["charset"])
    if "name" not in headers:
        raise FormError(NPE_NAME)
    name = _attribute_name(_clean(headers["name"]))
    if not name:
        raise FormError(EMPTY_NAME)
    if filename is None:
        return Field(name, None, data or b"")
    return Field(name, headers.get("content-type", FILE_TYPE), data or b"")


def _check_charset(name: str) -> None:
    if not _LEGAL_CHARSET.match(name):
        raise FormError(f"java.nio.charset.IllegalCharsetNameException: {name}")
    if name.lower() not in JAVA_CHARSETS:
        raise FormError(f"java.nio.charset.UnsupportedCharsetException: {name}")


def _python_charset(name: str) -> str:
    try:
        return "utf-8" if name.lower() not in JAVA_CHARSETS else _codec(name)
    except LookupError:
        return "utf-8"


def _codec(name: str) -> str:
    import codecs

    return codecs.lookup(name.replace("_", "-")).name


def _clean(text: str) -> str:
    """Netty's `cleanString`: `:` `,` `=` `;` and tab become spaces, quotes go, then trim."""
    return text.translate({ord(c): " " for c in ":,=;\t"}).replace('"', "").strip()


def _split_header(line: str) -> list[str]:
    """Netty's `splitMultipartHeader`: the name, then the values split on `;` outside quotes
    (on `,` when there is no `;`), each trimmed."""
    start = _skip_space(line, 0)
    end = start
    while end < len(line) and line[end] != ":" and not line[end].isspace():
        end += 1
    colon = end
    while colon < len(line):
        colon += 1
        if line[colon - 1] == ":":
            break
    value = line[_skip_space(line, colon) :].rstrip() if colon <= len(line) else ""
    values = _split_outside_quotes(value) if ";" in value else value.split(",")
    return [line[start:end]] + [v.strip() for v in values]


def _split_outside_quotes(value: str) -> list[str]:
    parts, start, quoted, escaped = [], 0, False, False
    for i, c in enumerate(value):
        if quoted:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ";":
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


class _Reader:
    """The decoder's read position in the body, and the steps it takes there."""

    def __init__(self, body: bytes, delimiter: bytes, encoding: str) -> None:
        self.body, self.delimiter, self.encoding, self.at = body, delimiter, encoding, 0

    def next_delimiter(self) -> str:
        """`findMultipartDelimiter`: "part" (an opening delimiter), "close" or "stop"."""
        at = self.at
        while at < len(self.body) and self.body[at] in _JAVA_SPACE:
            at += 1
        if at == len(self.body):
            return "stop"
        at = self._skip_line_end(at)
        d, body = self.delimiter, self.body
        if body[at : at + len(d)] != d or at + len(d) >= len(body):
            return "stop"
        rest = at + len(d)
        if body[rest : rest + 2] == b"\r\n" or body[rest : rest + 1] == b"\n":
            self.at = rest + (2 if body[rest : rest + 1] == b"\r" else 1)
            return "part"
        if body[rest : rest + 2] == b"--":
            return "close"
        return "stop"

    def part_headers(self) -> dict[str, str] | None:
        """`findMultipartDisposition`: the part's header lines, up to an empty line."""
        headers: dict[str, str] = {}
        while True:
            after = self._skip_line_end(self.at)
            if after != self.at:
                self.at = after
                return headers
            at = self.at
            while at < len(self.body) and self.body[at] in _JAVA_SPACE:
                at += 1
            end = self.body.find(b"\n", at)
            if end == -1:
                return None
            line_end = end - 1 if end > at and self.body[end - 1] == 13 else end
            line = self.body[at:line_end].decode(self.encoding, "replace")
            self.at = end + 1
            _read_header(_split_header(line), headers)

    def part_data(self) -> bytes | None:
        """`loadDataMultipart`: the bytes up to the line end before the next delimiter (None
        when no delimiter follows); the position stays at that line end."""
        body, d, start = self.body, self.delimiter, self.at
        at, last, index, previous = start, start, 0, 10
        while at < len(body):
            byte = body[at]
            at += 1
            if previous == 10 and byte == d[index]:
                index += 1
                if index == len(d):
                    if last > start and body[last - 1] == 13 and previous == 13:
                        last -= 1
                    self.at = last
                    return body[start:last]
                continue
            last = at
            if byte == 10:
                index = 0
                last -= 2 if previous == 13 else 1
            previous = byte
        return None

    def _skip_line_end(self, at: int) -> int:
        if self.body[at : at + 2] == b"\r\n":
            return at + 2
        if self.body[at : at + 1] == b"\n":
            return at + 1
        return at


def _read_header(contents: list[str], headers: dict[str, str]) -> None:
    """One part header into `headers` (Netty's attribute map, names in lower case)."""
    name, values = contents[0].lower(), contents[1:]
    if name == "content-disposition":
        if values and values[0].lower() == "form-data":
            for value in values[1:]:
                key, _, text = value.partition("=")
                key = _clean(key)
                if not _attribute_name(key):
                    raise FormError(EMPTY_NAME)
                if key == "filename":
                    if len(text) > 1 and text[0] == '"' and text[-1] == '"':
                        text = text[1:-1]
                else:
                    text = _clean(text)
                headers[_attribute_name(key).lower()] = text
    elif name in ("content-transfer-encoding", "content-length"):
        headers[name] = _clean(values[0]) if values else ""
    elif name == "content-type":
        for value in values:
            if value[:7].lower() == "charset":
                headers["charset"] = _clean(value.split("=", 1)[1]) if "=" in value else ""
            else:
                headers["content-type"] = value
