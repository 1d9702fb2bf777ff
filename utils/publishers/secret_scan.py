"""Secret scanning of a commit's files before anything is published.

Two scans, both in memory and offline:

- exact match: every file, attachments included, is searched for every
  configured secret value (SECRET, GITHUB_TOKEN, provider keys) as it is,
  percent-encoded, base64-encoded (standard and URL-safe, at any alignment
  inside a longer base64 text) and hex-encoded; text files are also searched
  after decoding HTML character references (``&#115;``, ``&#x73;``,
  ``&amp;``) and JavaScript escapes (``\\x73``, ``\\u0073``, ``\\u{73}``), so a
  secret hidden behind ``atob(...)``, a string of escapes or entities is caught;
- credential patterns: the files the service wrote (not the user's own
  attachments, nor binary files) go through detect-secrets' regex detectors
  (AWS, GitHub, GitLab, Slack, Stripe, private keys, JWTs, ...) plus a few
  of ours for key formats detect-secrets lacks (``sk-`` model keys, GitHub
  fine-grained tokens, Google and Hugging Face keys).

detect-secrets' entropy and keyword plugins are left out on purpose: they fire
on SRI hashes, data URIs, hex colours and demo passwords that generated apps
legitimately contain. Base64 data URIs and SRI ``integrity`` hashes are blanked
before the pattern scan for the same reason (a credential pattern found inside
random base64 is noise, not a credential), and a pattern match counts only as a
token of its own, not inside a longer run of letters and digits (a hash).

The detectors' ``analyze_string`` is called directly: detect-secrets' global
settings, filters and "verify" step (which would call the provider over the
network) are never used, so scanning is thread-safe and never leaves the host.

A ``Finding`` names the file, the line and the kind of secret, never the value;
``refuse_secrets`` turns findings into a ``PublishFailed`` (stage secret-scan).
"""

from __future__ import annotations

import base64
import html
import re
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Any

from utils.errors import PublishFailed

CONFIGURED_SECRET = "configured secret value"
MAX_FINDINGS_SHOWN = 5
_BINARY_SNIFF_BYTES = 8192
MIN_ENCODED_NEEDLE = 8  # shorter base64 fragments of a very short secret would match by chance
_JS_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|u\{([0-9A-Fa-f]{1,6})\})")

# Blanked before the pattern scan: base64 payloads of data: URIs and Subresource Integrity hashes.
_DATA_URI = re.compile(r"(data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,)[A-Za-z0-9+/]+={0,2}")
_SRI_HASH = re.compile(r"\bsha(?:256|384|512)-[A-Za-z0-9+/]{40,}={0,2}")

# detect-secrets' precise, regex-based detectors (module, class).
_DETECT_SECRETS_PLUGINS = (
    ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("basic_auth", "BasicAuthDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("jwt", "JwtTokenDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("npm", "NpmDetector"),
    ("openai", "OpenAIDetector"),
    ("private_key", "PrivateKeyDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"),
    ("slack", "SlackDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
    ("twilio", "TwilioKeyDetector"),
)

# Key formats detect-secrets 1.5 does not know: secret type, pattern.
_EXTRA_PATTERNS = (
    ("Model Provider API Key", r"(?<![\w-])sk-(?:proj-|ant-|or-v1-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"),
    ("GitHub Fine-grained Token", r"\bgithub_pat_[A-Za-z0-9_]{60,}"),
    ("Google API Key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("Hugging Face Token", r"\bhf_[A-Za-z0-9]{34,}"),
)


@dataclass(frozen=True)
class Finding:
    """A secret found in a file: where, and what kind (never the value)."""

    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.kind})"


def scan_files(files: Mapping[str, bytes], secret_values: Iterable[str], *,
               user_supplied: Collection[str] = ()) -> list[Finding]:
    """Every secret in ``files``: configured values anywhere, credential patterns outside ``user_supplied``."""
    values = [value for value in secret_values if value]
    needles = _needles(values)
    plain = tuple(value.encode() for value in values)
    findings: list[Finding] = []
    for path, content in files.items():
        findings.extend(_exact_matches(path, content, needles))
        if plain and not _is_binary(content):
            findings.extend(_exact_matches(path, _decode_escapes(content), plain))
        if path not in user_supplied and not _is_binary(content):
            findings.extend(scan_text(path, content.decode("utf-8", errors="replace")))
    return sorted(set(findings), key=lambda f: (f.path, f.line, f.kind))


def refuse_secrets(files: Mapping[str, bytes], secret_values: Iterable[str], *,
                   user_supplied: Collection[str] = ()) -> None:
    """Raise PublishFailed (stage secret-scan) naming file, line and kind if ``files`` hold a secret."""
    findings = scan_files(files, secret_values, user_supplied=user_supplied)
    if not findings:
        return
    shown = "; ".join(str(f) for f in findings[:MAX_FINDINGS_SHOWN])
    more = f" and {len(findings) - MAX_FINDINGS_SHOWN} more" if len(findings) > MAX_FINDINGS_SHOWN else ""
    raise PublishFailed(f"the generated files contain what looks like a secret, so nothing was committed: "
                        f"{shown}{more}", stage="secret-scan")


def scan_text(path: str, text: str) -> Iterator[Finding]:
    """Credential patterns in ``text``, one Finding per line and kind."""
    text = _blank_encoded_data(text)
    for kind, detector in _detectors():
        if not any(True for _ in detector.analyze_string(text)):  # whole text first: clean files stay fast
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if any(_standalone(line, match) for match in detector.analyze_string(line)):
                yield Finding(path, number, kind)


def _standalone(line: str, match: str) -> bool:
    """True if ``match`` occurs in ``line`` as a token of its own, not inside a longer run of letters and digits.

    Credentials are delimited; a key-shaped run inside a longer one (``ACCA...``
    in an upper-case SHA-1, say) is part of a hash or an identifier.
    """
    start = line.find(match)
    while start != -1:
        end = start + len(match)
        glued_before = start > 0 and line[start - 1].isalnum() and match[0].isalnum()
        glued_after = end < len(line) and line[end].isalnum() and match[-1].isalnum()
        if not (glued_before or glued_after):
            return True
        start = line.find(match, start + 1)
    return False


def _needles(secret_values: Iterable[str]) -> tuple[bytes, ...]:
    """The byte strings to look for: each secret as it is, percent-, base64- and hex-encoded."""
    forms: set[bytes] = set()
    for value in secret_values:
        if value:
            raw = value.encode()
            forms.update((raw, urllib.parse.quote(value, safe="").encode(), raw.hex().encode(),
                          raw.hex().upper().encode()))
            forms.update(_base64_forms(raw))
    return tuple(forms)


def _base64_forms(raw: bytes) -> set[bytes]:
    """The base64 characters that encode ``raw`` alone, at each of the three alignments, standard and URL-safe.

    Inside a longer base64 text the secret starts at byte offset 0, 1 or 2 of a
    3-byte group; the characters fully determined by its bytes are the same
    whatever surrounds it, so they are what is searched for.
    """
    forms: set[bytes] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
        core = encoded[start:end]
        if len(core) >= MIN_ENCODED_NEEDLE:
            forms.update((core, core.replace(b"+", b"-").replace(b"/", b"_")))
    return forms


def _decode_escapes(content: bytes) -> bytes:
    """The text with HTML character references and JavaScript string escapes decoded."""
    text = content.decode("utf-8", errors="replace")
    if "&" in text:
        text = html.unescape(text)
    if "\\" in text:
        text = _JS_ESCAPE.sub(_js_escaped_character, text)
    return text.encode("utf-8", errors="replace")


def _js_escaped_character(match: re.Match[str]) -> str:
    """The character a ``\\xNN``, ``\\uNNNN`` or ``\\u{N}`` escape stands for."""
    code = int(next(group for group in match.groups() if group), 16)
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else match.group(0)


def _exact_matches(path: str, content: bytes, needles: tuple[bytes, ...]) -> Iterator[Finding]:
    """One Finding per line holding a configured secret value."""
    for needle in needles:
        start = content.find(needle)
        while start != -1:
            yield Finding(path, content.count(b"\n", 0, start) + 1, CONFIGURED_SECRET)
            start = content.find(needle, start + len(needle))


def _is_binary(content: bytes) -> bool:
    """Git's rule: a NUL byte near the start means binary."""
    return b"\x00" in content[:_BINARY_SNIFF_BYTES]


def _blank_encoded_data(text: str) -> str:
    """Remove data: URI payloads and SRI hashes (single-line, so line numbers stay right)."""
    return _SRI_HASH.sub("sha-hash", _DATA_URI.sub(r"\1", text))


@lru_cache(maxsize=1)
def _detectors() -> tuple[tuple[str, Any], ...]:
    """(secret type, detector) for every pattern detector, built once (imports detect-secrets lazily)."""
    from detect_secrets.plugins.base import RegexBasedDetector  # why: heavy; only a commit needs it

    detectors = []
    for module, name in _DETECT_SECRETS_PLUGINS:
        plugin = getattr(import_module(f"detect_secrets.plugins.{module}"), name)()
        detectors.append((plugin.secret_type, plugin))
    for kind, pattern in _EXTRA_PATTERNS:
        extra = type(kind.title().replace(" ", "") + "Detector", (RegexBasedDetector,),
                     {"secret_type": kind, "denylist": (re.compile(pattern),)})
        detectors.append((kind, extra()))
    return tuple(detectors)
