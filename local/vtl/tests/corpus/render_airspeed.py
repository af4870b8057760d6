#!/usr/bin/env python3
"""Renders every corpus case with airspeed-ext, the Velocity engine LocalStack uses for API
Gateway templates: the independent oracle of local/vtl/tests/differential.rs.

Usage: render_airspeed.py CORPUS_DIR  →  prints {"case": {"output": "…"} | {"error": "…"}}.

Like LocalStack, this script gives the template `$context` and `$stageVariables` as maps that
print Java-style, `$input` (body, json, path, params) and `$util` (escapeJavaScript,
parseJson, urlEncode, urlDecode, base64Encode, base64Decode). The helpers follow what API
Gateway documents (compact JSON from `$input.json`, an empty string for a path that matches
nothing, `URLEncoder` and Commons Lang escaping), so a difference points at the Velocity
engine, not at this harness. The engine itself (airspeed) is used unmodified.
"""

import base64
import json
import os
import sys
from urllib.parse import unquote_plus

import airspeed


def java_text(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


class JavaMap(dict):
    """A java.util.LinkedHashMap: prints as {a=1, b=2}."""

    def __str__(self):
        return "{" + ", ".join(f"{k}={java_text(v)}" for k, v in self.items()) + "}"


class JsonList(list):
    """A JSON array from the request body: prints as compact JSON."""

    def __str__(self):
        return json.dumps(to_plain(self), separators=(",", ":"), ensure_ascii=False)


def to_plain(value):
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def as_java(value):
    """JSON document → template values (maps print Java-style, arrays as JSON)."""
    if isinstance(value, dict):
        return JavaMap((k, as_java(v)) for k, v in value.items())
    if isinstance(value, list):
        return JsonList(as_java(v) for v in value)
    return value


# airspeed looks methods up by exact class: give the wrappers the dict/list methods.
airspeed.operators.__additional_methods__[JavaMap] = airspeed.operators.__additional_methods__[dict]
airspeed.operators.__additional_methods__[JsonList] = airspeed.operators.__additional_methods__[list]

_MISSING = object()


def json_path(document, path):
    """The JSONPath subset API Gateway templates use: $, .key, ['key'], [index]."""
    path = path.strip()
    if not path.startswith("$"):
        raise ValueError(f"JSONPath {path!r} must start with $")
    rest, current = path[1:], document
    while rest:
        if rest.startswith("."):
            rest = rest[1:]
            end = min([i for i in (rest.find("."), rest.find("[")) if i >= 0] or [len(rest)])
            key, rest = rest[:end], rest[end:]
            current = current.get(key, _MISSING) if isinstance(current, dict) else _MISSING
        elif rest.startswith("["):
            end = rest.index("]")
            inside, rest = rest[1:end].strip(), rest[end + 1:]
            if inside[:1] in ("'", '"'):
                key = inside[1:-1]
                current = current.get(key, _MISSING) if isinstance(current, dict) else _MISSING
            else:
                index = int(inside)
                ok = isinstance(current, list) and -len(current) <= index < len(current)
                current = current[index] if ok else _MISSING
        else:
            raise ValueError(f"unsupported JSONPath {path!r}")
        if current is _MISSING:
            return _MISSING
    return current


class Input:
    def __init__(self, body, params):
        self.body = body
        self._params = params

    def _select(self, path):
        try:
            document = json.loads(self.body)
        except ValueError:
            return _MISSING
        return json_path(document, path)

    def json(self, path):
        found = self._select(path)
        if found is _MISSING:
            return ""
        return json.dumps(found, separators=(",", ":"), ensure_ascii=False)

    def path(self, path):
        found = self._select(path)
        return None if found is _MISSING else as_java(found)

    def params(self, name=None):
        if name is None:
            return JavaMap((kind, JavaMap(self._params.get(kind, {}))) for kind in ("path", "querystring", "header"))
        for kind in ("path", "querystring", "header"):
            if name in self._params.get(kind, {}):
                return self._params[kind][name]
        return ""


def escape_javascript(text):
    """Commons Lang 2 StringEscapeUtils.escapeJavaScript."""
    out = []
    for char in text:
        code = ord(char)
        simple = {"'": "\\'", '"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\n": "\\n",
                  "\t": "\\t", "\f": "\\f", "\r": "\\r"}
        if char in simple:
            out.append(simple[char])
        elif code < 0x20 or code > 0x7F:
            units = char.encode("utf-16-be")
            for i in range(0, len(units), 2):
                out.append("\\u%04X" % int.from_bytes(units[i:i + 2], "big"))
        else:
            out.append(char)
    return "".join(out)


def url_encode(text):
    """java.net.URLEncoder.encode(text, "UTF-8")."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_"
    out = []
    for byte in text.encode("utf-8"):
        if byte in safe:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append("%%%02X" % byte)
    return "".join(out)


class Util:
    def escapeJavaScript(self, value):
        return None if value is None else escape_javascript(java_text(value))

    def urlEncode(self, value):
        return None if value is None else url_encode(java_text(value))

    def urlDecode(self, value):
        return None if value is None else unquote_plus(java_text(value))

    def base64Encode(self, value):
        return None if value is None else base64.b64encode(java_text(value).encode()).decode()

    def base64Decode(self, value):
        return None if value is None else base64.b64decode(java_text(value)).decode("utf-8", "replace")

    def parseJson(self, value):
        return as_java(json.loads(value))


def render(source, case):
    data = case.get("input", {})
    namespace = {
        "context": as_java(data.get("context", {})),
        "stageVariables": JavaMap(data.get("stage_variables", {})),
        "input": Input(data.get("body", ""), data.get("params", {})),
        "util": Util(),
    }
    return airspeed.Template(source).merge(namespace)


def main():
    corpus = sys.argv[1]
    results = {}
    for name in sorted(os.listdir(corpus)):
        if not name.endswith(".json"):
            continue
        case_name = name[:-5]
        with open(os.path.join(corpus, name), encoding="utf-8") as handle:
            case = json.load(handle)
        template = case.get("template") or f"{case_name}.vtl"
        with open(os.path.join(corpus, template), encoding="utf-8") as handle:
            source = handle.read()
        try:
            results[case_name] = {"output": render(source, case)}
        except Exception as error:  # any failure of the engine is a result to compare
            results[case_name] = {"error": f"{type(error).__name__}: {error}"}
    json.dump(results, sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
