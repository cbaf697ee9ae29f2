#!/usr/bin/python3
"""Checks that docs/ describes the service as the code has it.

Reads the service sources (route table of service/http_api.c, topic
literals of service/topics.c, error table of service/errors.c, env names
of service/config.c) and, when given, the --help output of the built
binary, then checks that each item appears where a reader will look for
it: openapi.yaml / api.md for routes and error codes, asyncapi.yaml /
mqtt.md for topics, configuration.md for settings. Fails if the sources
yield too little to check, so it never passes vacuously.

Usage: check_docs.py REPO_ROOT [PATH_TO_CALLSIGNAL]
Stdlib only; PyYAML, when importable, additionally checks that both YAML
files parse and agree with what this script reads from them by hand.
"""
import re
import subprocess
import sys
from pathlib import Path

# The environment variables of the spec (docs/configuration.md lists them all).
SPEC_ENV = [
    "PORT", "HTTP_HOST", "MQTT_URL", "MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_CA_FILE",
    "MQTT_WS_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL", "TOKEN_TTL_S",
    "RING_TIMEOUT_S", "OFFLINE_GRACE_S", "CALL_RETENTION_S", "WEB_ROOT", "CORS_ORIGIN",
    "LOG_LEVEL", "AUTH_MODE", "AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY_FILE",
    "START_RATE_PER_MIN",
]
MIN_ROUTES = 5
MIN_TOPICS = 2
MIN_ERRORS = 15

failures = []


def fail(msg):
    failures.append(msg)


def read(path):
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
        return ""


def strip_c_comments(src):
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def c_string_literals(src):
    return re.findall(r'"((?:[^"\\\n]|\\.)*)"', strip_c_comments(src))


def yaml_section_keys(text, section, indent):
    """Keys at `indent` spaces inside the top-level `section:` block."""
    m = re.search(rf"^{section}:\s*\n((?:(?:[ #].*)?\n)*)", text, re.M)
    if not m:
        return {}
    keys, current = {}, None
    for line in m.group(1).splitlines():
        km = re.match(rf"^ {{{indent}}}(['\"]?)([^\s#'\"][^'\"]*?)\1:\s*(#.*)?$", line)
        if km:
            current = km.group(2)
            keys[current] = []
            continue
        sub = re.match(rf"^ {{{indent + 2}}}([a-z]+):", line)
        if sub and current is not None:
            keys[current].append(sub.group(1))
    return keys


def error_code_enum(openapi):
    """Codes (with the status in their trailing comment) of components.schemas.ErrorCode."""
    m = re.search(r"^    ErrorCode:\n((?:      .*\n|\s*\n)+)", openapi, re.M)
    if not m:
        return {}
    return {code: status for code, status in
            re.findall(r"^\s+- ([A-Z_]+)\s*#\s*(\d{3})", m.group(1), re.M)}


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    root = Path(sys.argv[1])
    binary = sys.argv[2] if len(sys.argv) > 2 else None
    docs = root / "docs"
    openapi = read(docs / "openapi.yaml")
    asyncapi = read(docs / "asyncapi.yaml")
    api_md = read(docs / "api.md")
    mqtt_md = read(docs / "mqtt.md")
    config_md = read(docs / "configuration.md")

    paths = yaml_section_keys(openapi, "paths", 2)
    channels = yaml_section_keys(asyncapi, "channels", 2)
    codes_documented = error_code_enum(openapi)
    if not paths:
        fail("docs/openapi.yaml: no paths found")
    if not channels:
        fail("docs/asyncapi.yaml: no channels found")
    if not codes_documented:
        fail("docs/openapi.yaml: no components.schemas.ErrorCode enum found")

    # Cross-check the hand parsing with a real YAML parser when there is one.
    try:
        import yaml  # python3-yaml; optional
    except ImportError:
        yaml = None
        print("note: PyYAML absent, YAML files checked by pattern only")
    if yaml is not None:
        try:
            oa = yaml.safe_load(openapi)
            aa = yaml.safe_load(asyncapi)
            if {p: sorted(v) for p, v in oa["paths"].items()} != {p: sorted(v) for p, v in paths.items()}:
                fail("docs/openapi.yaml: hand-parsed paths differ from the YAML parser's")
            if sorted(aa["channels"]) != sorted(channels):
                fail("docs/asyncapi.yaml: hand-parsed channels differ from the YAML parser's")
            if sorted(oa["components"]["schemas"]["ErrorCode"]["enum"]) != sorted(codes_documented):
                fail("docs/openapi.yaml: ErrorCode enum entries need a '# <status>' comment each")
            if not str(oa.get("openapi", "")).startswith("3.0"):
                fail("docs/openapi.yaml: not an OpenAPI 3.0 document")
            if str(aa.get("asyncapi", "")) != "2.6.0":
                fail("docs/asyncapi.yaml: not an AsyncAPI 2.6.0 document")
        except Exception as e:  # any parse or shape error is a doc bug
            fail(f"YAML parse/shape error: {e!r}")

    # 1. Routes: service/http_api.c route table -> openapi paths + api.md.
    src = strip_c_comments(read(root / "service" / "http_api.c"))
    routes = sorted(set(re.findall(r'\{\s*"(GET|POST|PUT|DELETE|PATCH)"\s*,\s*"(/[^"]*)"', src)))
    if len(routes) < MIN_ROUTES:
        fail(f"service/http_api.c: found {len(routes)} routes, expected at least {MIN_ROUTES}")
    for method, path in routes:
        if path not in paths:
            fail(f"route {method} {path}: missing from docs/openapi.yaml paths")
        elif method.lower() not in paths[path]:
            fail(f"route {method} {path}: docs/openapi.yaml has {path} without `{method.lower()}`")
        if not re.search(rf"(?m)^#+ .*`?{method} {re.escape(path)}`?\s*$", api_md):
            fail(f"route {method} {path}: no heading '{method} {path}' in docs/api.md")
    print(f"routes checked: {len(routes)}")

    # 2. Topics: literals of service/topics.c containing "users/" -> asyncapi channels + mqtt.md.
    literals = [s for s in c_string_literals(read(root / "service" / "topics.c")) if "users/" in s]
    topics = [s for s in literals if not s.endswith("/")]  # "users/" alone is a parse prefix
    if len(topics) < MIN_TOPICS:
        fail(f"service/topics.c: found {len(topics)} topic patterns, expected at least {MIN_TOPICS}")
    for prefix in [s for s in literals if s.endswith("/")]:
        if not any(c.startswith(prefix) for c in channels):
            fail(f"topic prefix {prefix!r}: no channel of docs/asyncapi.yaml starts with it")

    def level_matches(code_level, doc_level):
        wildcard = code_level in ("+", "%s") or re.fullmatch(r"%[-.0-9]*[a-z]+", code_level)
        param = re.fullmatch(r"\{[A-Za-z]+\}", doc_level)
        return (wildcard and param) or code_level == doc_level

    for topic in topics:
        levels = topic.split("/")
        matches = [c for c in channels if len(c.split("/")) == len(levels)
                   and all(level_matches(a, b) for a, b in zip(levels, c.split("/")))]
        if not matches:
            fail(f"topic {topic!r}: no matching channel in docs/asyncapi.yaml")
            continue
        for channel in matches:
            if channel not in mqtt_md:
                fail(f"topic {topic!r}: channel {channel} not mentioned in docs/mqtt.md")
    print(f"topic patterns checked: {len(topics)}")

    # 3. Error codes: table of service/errors.c -> openapi ErrorCode enum (same status) + api.md.
    src = strip_c_comments(read(root / "service" / "errors.c"))
    table = re.findall(r'\{\s*(\d{3})\s*,\s*"([A-Z][A-Z0-9_]*)"\s*,', src)
    errors = sorted({(code, status) for status, code in table if not status.startswith("2")})
    if len(errors) < MIN_ERRORS:
        fail(f"service/errors.c: found {len(errors)} error codes, expected at least {MIN_ERRORS}")
    for code, status in errors:
        if code not in codes_documented:
            fail(f"error {code}: missing from the ErrorCode enum of docs/openapi.yaml")
        elif codes_documented[code] != status:
            fail(f"error {code}: docs/openapi.yaml says {codes_documented[code]}, service says {status}")
        if not re.search(rf"(?m)^\|.*\b{status}\b.*`{code}`.*\|\s*$", api_md):
            fail(f"error {code}: no table row with status {status} and `{code}` in docs/api.md")
    for code in codes_documented:
        if code not in {c for c, _ in errors} and errors:
            fail(f"error {code}: documented in docs/openapi.yaml but not in service/errors.c")
    print(f"error codes checked: {len(errors)}")

    # 4. Settings: env names of service/config.c -> configuration.md (env and flag).
    found = {s for s in c_string_literals(read(root / "service" / "config.c"))
             if re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*", s)}
    env = sorted(found & set(SPEC_ENV))
    for name in sorted(set(SPEC_ENV) - found):
        fail(f"env {name}: in the spec but not a string literal of service/config.c")
    for name in env:
        flag = "--" + name.lower().replace("_", "-")
        if not re.search(rf"`{name}`", config_md):
            fail(f"env {name}: not in docs/configuration.md")
        if f"`{flag}`" not in config_md:
            fail(f"env {name}: flag {flag} not in docs/configuration.md")
    if "`--insecure-public`" not in config_md:
        fail("flag --insecure-public not in docs/configuration.md")
    print(f"env vars checked: {len(env)}")

    # 5. Flags printed by `callsignal --help` -> configuration.md.
    if binary:
        try:
            out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
            if out.returncode != 0:
                fail(f"{binary} --help exited {out.returncode}")
            flags = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", out.stdout + out.stderr)))
            if len(flags) < 10:
                fail(f"--help lists {len(flags)} flags, expected at least 10")
            for flag in flags:
                if f"`{flag}`" not in config_md:
                    fail(f"flag {flag} (from --help): not in docs/configuration.md")
            print(f"--help flags checked: {len(flags)}")
        except (OSError, subprocess.TimeoutExpired) as e:
            fail(f"cannot run {binary} --help: {e}")

    for f in failures:
        print("FAIL:", f)
    print("docs in step with code" if not failures else f"{len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
