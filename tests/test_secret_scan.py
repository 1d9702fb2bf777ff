"""Tests for utils.publishers.secret_scan: credentials are found by file and line, realistic apps pass.

Fake credentials are assembled at run time so this file holds no literal token
(push protection and secret scanners would flag the repository otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid

import pytest
from PIL import Image

from tests.sample_task import ROUND1_INDEX, ROUND1_README, ROUND1_SCRIPT, SALES_CSV
from utils.errors import PublishFailed
from utils.publishers.repo_files import mit_license
from utils.publishers.secret_scan import CONFIGURED_SECRET, Finding, refuse_secrets, scan_files

CONFIGURED = "cfg-secret-" + "Zq81xWv0Lm"

GITHUB_TOKEN = "gh" + "p_" + "R8mZk2Qw9XcV4bN7tY1uH3jL6pD0sF5gA2eK"
GITHUB_FINE_GRAINED = "github" + "_pat_" + "11ABCDEFG0" + "x" * 12 + "_" + "Yh7Tq2Wm9Zk4Rv8Nb3Lc6Pd1Sf5Gj0Hx" * 2
AWS_KEY_ID = "AK" + "IA" + "Q3EGJ7XKZ2MN5PLR"
PRIVATE_KEY = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
PROJECT_KEY = "sk-" + "proj-" + "Hq3ZxV9wK2mL7pN4rT8yB1cD6fG0jS5uA3eW"
LEGACY_OPENAI_KEY = "sk-" + "a1B2c3D4e5F6g7H8i9J0" + "T3Blbk" + "FJ" + "k1L2m3N4o5P6q7R8s9T0"
ANTHROPIC_KEY = "sk-" + "ant-api03-" + "Wm4Xq7Zr1Tk8Vn2Bp5Lc9Hd3Jf6Gs0Ay4Ue"
SLACK_TOKEN = "xo" + "xb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE_KEY = "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in
               (b'{"alg":"HS256","typ":"JWT"}', b'{"sub":"42","name":"Ada"}', b"signature-bytes-32-long-0123456"))

LEAKS = [
    ("github token", GITHUB_TOKEN, "GitHub Token"),
    ("github fine-grained token", GITHUB_FINE_GRAINED, "GitHub Fine-grained Token"),
    ("aws access key id", AWS_KEY_ID, "AWS Access Key"),
    ("private key block", PRIVATE_KEY, "Private Key"),
    ("openai project key", PROJECT_KEY, "Model Provider API Key"),
    ("openai legacy key", LEGACY_OPENAI_KEY, "OpenAI Token"),
    ("anthropic key", ANTHROPIC_KEY, "Model Provider API Key"),
    ("slack token", SLACK_TOKEN, "Slack Token"),
    ("stripe live key", STRIPE_KEY, "Stripe Access Key"),
    ("json web token", JWT, "JSON Web Token"),
    ("credentials in a URL", "https://admin:" + "hunter2pass" + "@db.example.com/", "Basic Auth Credentials"),
    ("configured secret", CONFIGURED, CONFIGURED_SECRET),
]


def app_files(**extra: bytes) -> dict[str, bytes]:
    """The sample app's files as the pipeline would commit them."""
    return {"index.html": ROUND1_INDEX.encode(), "app.js": ROUND1_SCRIPT.encode(),
            "README.md": ROUND1_README.encode(), "LICENSE": mit_license("student@example.com", 2025).encode(),
            "data.csv": SALES_CSV, **extra}


def leaking_script(secret: str) -> bytes:
    """app.js with ``secret`` on line 3."""
    return f"// settings\nconst endpoint = '/api';\nconst key = '{secret}';\nconsole.log(endpoint);\n".encode()


@pytest.mark.parametrize("name, secret, kind", LEAKS, ids=[case[0] for case in LEAKS])
def test_each_leak_is_found_with_its_file_and_line(name, secret, kind):
    findings = scan_files(app_files(**{"app.js": leaking_script(secret)}), (CONFIGURED,))
    assert Finding("app.js", 3, kind) in findings, findings


@pytest.mark.parametrize("name, secret, kind", LEAKS, ids=[case[0] for case in LEAKS])
def test_each_leak_blocks_the_commit_without_repeating_the_secret(name, secret, kind):
    with pytest.raises(PublishFailed) as caught:
        refuse_secrets(app_files(**{"app.js": leaking_script(secret)}), (CONFIGURED,))
    error = caught.value
    assert error.stage == "secret-scan" and error.status == 502
    assert "app.js:3" in error.message and kind in error.message
    for fragment in (secret, secret.splitlines()[0][-20:]):
        assert fragment not in error.message and fragment not in str(error.to_body())


def test_a_realistic_app_passes():
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (12, 99, 200)).save(png, format="PNG")
    logo = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    sri = "sha384-" + base64.b64encode(hashlib.sha384(b"bootstrap.bundle.min.js").digest()).decode()
    index = ROUND1_INDEX.replace("</head>", f"""  <script src="https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js"
    integrity="{sri}" crossorigin="anonymous"></script>
  <link rel="icon" href="{logo}">
  <style>:root {{ --brand: #1a2b3c; --accent: #FF00AA; }} .hero {{ background: url({logo}); }}</style>
</head>""")
    script = ROUND1_SCRIPT + f"""
const SESSION_ID = '{uuid.uuid4()}';
const BUILD = '{hashlib.sha1(b"build").hexdigest().upper()}';
const CHECKSUM = '{hashlib.sha256(b"data").hexdigest()}';
const password = document.querySelector('#password');  // a form field, not a secret
const api_key = 'YOUR_API_KEY';
fetch('https://api.example.com/v1/items?limit=10');
"""
    files = app_files(**{"index.html": index.encode(), "app.js": script.encode(), "logo.png": png.getvalue()})
    assert scan_files(files, (CONFIGURED,)) == []
    refuse_secrets(files, (CONFIGURED,))


def test_the_configured_secret_is_found_in_attachments_too_but_their_patterns_are_the_users_own():
    attachment = f"name,token\nsample,{GITHUB_TOKEN}\nmine,{CONFIGURED}\n".encode()
    findings = scan_files(app_files(**{"tokens.csv": attachment}), (CONFIGURED,), user_supplied={"tokens.csv"})
    assert findings == [Finding("tokens.csv", 3, CONFIGURED_SECRET)]


def test_a_percent_encoded_secret_is_found():
    secret = "pa ss/word+" + "Kx81Lq"
    page = f"<a href='/login?secret={secret.replace(' ', '%20').replace('/', '%2F').replace('+', '%2B')}'>x</a>"
    assert scan_files({"index.html": page.encode()}, (secret,)) == [Finding("index.html", 1, CONFIGURED_SECRET)]


def test_binary_files_get_only_the_exact_match():
    blob = b"\x89PNG\r\n\x1a\n\x00\x00" + GITHUB_TOKEN.encode() + b"\x00" + CONFIGURED.encode()
    assert scan_files({"image.png": blob}, (CONFIGURED,)) == [Finding("image.png", 3, CONFIGURED_SECRET)]


def test_a_key_shaped_run_inside_a_longer_hash_is_not_a_key():
    digest = "ACCA" + hashlib.sha1(b"x").hexdigest().upper()[:16] + "FF00"
    assert scan_files({"app.js": f"const id = '{digest}';".encode()}, ()) == []


def test_many_findings_are_summarised():
    script = "\n".join(f"const k{i} = '{GITHUB_TOKEN}';" for i in range(8)).encode()
    with pytest.raises(PublishFailed) as caught:
        refuse_secrets({"app.js": script}, ())
    assert "app.js:1 (GitHub Token)" in caught.value.message and "and 3 more" in caught.value.message
    assert GITHUB_TOKEN not in caught.value.message


def test_no_secrets_configured_and_nothing_found():
    assert scan_files(app_files(), ()) == []
    assert scan_files({}, (CONFIGURED,)) == []
