"""Build-time fetches: which URLs of a brief are fetched, the SSRF policy, the caps and the User-Agent.

Real local servers play the sites (tests/fakes/data_site.py). Tests run on
loopback, so the fetches that must succeed use ``allow_private=True`` (what
``FETCH_ALLOW_PRIVATE=true`` sets) or the guard's ``public_stand_ins`` seam (one
loopback port judged public), and the refusal tests run with the policy as
shipped: a refused fetch must leave a ``ConnectionCounter`` at zero connections.
"""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from tests.fakes.data_site import ConnectionCounter, DataSite, Document
from tests.fakes.faults import Delay, Fail
from utils.config import load_config
from utils.deadline import Deadline
from utils.intake.fetch import (
    AddressGuard,
    FetchLimits,
    fetch_all,
    fetch_brief_urls,
    refusal_reason,
    urls_in_brief,
    user_agent_for,
)

EMAIL = "student@example.com"
ALLOW = AddressGuard(allow_private=True)


@pytest.fixture
def counter():
    with ConnectionCounter() as listener:
        yield listener


@pytest.fixture
def site():
    with DataSite() as server:
        yield server


def fetch_one(url: str, guard: AddressGuard | None = None, *, user_agent: str = "test-agent (a@b.test)",
              limits: FetchLimits | None = None):
    """One fetch through the real fetcher."""
    return fetch_all([url], guard=guard or AddressGuard(), user_agent=user_agent, limits=limits or FetchLimits())[0]


# ---------------------------------------------------------------- URLs in the brief

def test_urls_in_brief_drop_prose_punctuation_and_duplicates():
    brief = ("Fetch https://data.sec.gov/api/xbrl/companyconcept/CIK0000320193/dei/X.json (set a User-Agent). "
             "See [the docs](https://example.org/a_(b)) and http://example.net/data.csv, then "
             "https://data.sec.gov/api/xbrl/companyconcept/CIK0000320193/dei/X.json again. Not ftp://x.y/z or "
             "https://<user>.github.io/<repo>/.")
    assert urls_in_brief(brief) == ["https://data.sec.gov/api/xbrl/companyconcept/CIK0000320193/dei/X.json",
                                    "https://example.org/a_(b)", "http://example.net/data.csv"]


def test_urls_in_brief_are_bounded_in_number():
    brief = " ".join(f"https://example.org/{n}.json" for n in range(30))
    assert len(urls_in_brief(brief)) == 8


# ---------------------------------------------------------------- SSRF: refused with no connection made

@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
])
def test_loopback_in_any_spelling_is_refused_without_connecting(counter, host):
    document = fetch_one(f"http://{host}:{counter.port}/data.json")
    assert not document.ok and document.error.startswith("refused:"), document.error
    assert "loopback" in document.error
    assert document.status is None and document.data == b""
    assert counter.connections == 0


@pytest.mark.parametrize("host, reason", [
    ("10.0.0.7", "private"), ("192.168.1.20", "private"), ("172.16.5.4", "private"),
    ("169.254.169.254", "link-local"), ("[fe80::1]", "link-local"), ("[fd00::1]", "private"),
    ("224.0.0.251", "multicast"), ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"),
    ("100.64.0.1", "not a public address"), ("[64:ff9b::a00:1]", "private"), ("[2002:a00:1::]", "private"),
])
def test_private_link_local_multicast_and_reserved_addresses_are_refused(host, reason):
    document = fetch_one(f"http://{host}/latest/meta-data/")
    assert document.error.startswith("refused:") and reason in document.error, document.error


def test_a_name_resolving_to_a_private_address_is_refused(counter):
    guard = AddressGuard(resolve=lambda host, port: ["10.20.30.40"])
    document = fetch_one("https://internal.example.test/data.json", guard)
    assert "'internal.example.test' resolves to 10.20.30.40, which is private" in document.error
    # one private address among public ones is enough to refuse (the connection could pick it)
    guard = AddressGuard(resolve=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    document = fetch_one(f"http://mixed.example.test:{counter.port}/", guard)
    assert "loopback" in document.error and counter.connections == 0


def test_a_public_url_redirecting_to_a_private_one_is_refused(site, counter):
    site.documents["/moved"] = Document(redirect_to=f"http://127.0.0.1:{counter.port}/secret")
    site.documents["/moved-by-name"] = Document(redirect_to=f"http://localhost:{counter.port}/secret")
    public = AddressGuard(public_stand_ins=frozenset({("127.0.0.1", site.port)}))
    for path in ("/moved", "/moved-by-name"):
        document = fetch_one(f"{site.url}{path}", public)
        assert document.error.startswith("refused:") and "loopback" in document.error, document.error
    assert [seen.path for seen in site.requests] == ["/moved", "/moved-by-name"]  # the public hops were made
    assert counter.connections == 0


def test_the_address_policy_judges_ipv4_inside_ipv6():
    from ipaddress import ip_address
    assert refusal_reason(ip_address("::ffff:10.0.0.1")) == "private (IPv4 10.0.0.1 inside IPv6)"
    assert refusal_reason(ip_address("8.8.8.8")) is None
    assert refusal_reason(ip_address("2606:4700:4700::1111")) is None


def test_allow_private_reaches_a_lan_server(site):
    site.documents["/data.json"] = Document(b'{"rows": [1, 2, 3]}')
    document = fetch_one(f"{site.url}/data.json", ALLOW)
    assert document.ok and document.status == 200
    assert json.loads(document.data) == {"rows": [1, 2, 3]}
    assert document.content_type == "application/json"


def test_a_url_with_credentials_is_refused_and_never_sent(site, caplog):
    site.documents["/data.json"] = Document(b'{"rows": [1]}')
    with caplog.at_level(logging.INFO, logger="utils.intake.fetch"):
        document = fetch_one(site.url.replace("http://", "http://alice:hunter2@") + "/data.json", ALLOW)
    assert not document.ok and "credentials" in document.error and "hunter2" not in document.error
    assert site.requests == []
    logged = [record.__dict__.get("url", "") for record in caplog.records]
    assert logged and all("hunter2" not in url for url in logged)


# ---------------------------------------------------------------- caps

def test_the_size_cap_stops_reading_and_says_so(site):
    site.documents["/big.csv"] = Document(b"n\n" + b"1234567\n" * 40_000, "text/csv")  # 320 KB
    document = fetch_one(f"{site.url}/big.csv", ALLOW, limits=FetchLimits(max_bytes=100_000))
    assert document.ok and document.truncated
    assert len(document.data) == 100_000


def test_the_size_cap_counts_decompressed_bytes(site):
    bomb = gzip.compress(b"0" * 20_000_000, 9)  # about 20 KB on the wire
    site.documents["/bomb.json"] = Document(bomb, headers={"Content-Encoding": "gzip"})
    document = fetch_one(f"{site.url}/bomb.json", ALLOW, limits=FetchLimits(max_bytes=100_000))
    assert document.truncated and document.data == b"0" * 100_000


def test_the_time_cap_holds_for_a_slow_answer_and_a_slow_body(site):
    site.documents["/late.json"] = Document(b"{}", fault=Delay(3))
    site.documents["/drip.csv"] = Document(b"x" * 40 * 1024, "text/csv", drip_seconds=0.1)  # 4 s in all
    late, drip = fetch_all([f"{site.url}/late.json", f"{site.url}/drip.csv"], guard=ALLOW, user_agent="t",
                           limits=FetchLimits(timeout=0.6))
    assert late.error.startswith("timed out") and late.data == b""
    assert drip.error.startswith("timed out") and len(drip.data) < 40 * 1024


def test_the_time_cap_holds_for_a_slow_body_with_a_content_length(site):
    body = b"x" * 40 * 1024  # 1 KB every 0.1 s: 4 s in all, once read whole before the cap was looked at
    site.documents["/drip.csv"] = Document(body, "text/csv", drip_seconds=0.1,
                                           headers={"Content-Length": str(len(body))})
    drip = fetch_one(f"{site.url}/drip.csv", ALLOW, limits=FetchLimits(timeout=0.6))
    assert drip.error.startswith("timed out") and 0 < len(drip.data) < len(body), drip


def test_failures_are_values_not_exceptions(site):
    site.documents["/gone"] = Document(fault=Fail(503, "maintenance"))
    down, missing, nowhere = fetch_all([f"{site.url}/gone", f"{site.url}/missing", "http://127.0.0.1:9/x"],
                                       guard=ALLOW, user_agent="t")
    assert down.status == 503 and down.error == "HTTP 503 SERVICE UNAVAILABLE"
    assert missing.status == 404 and not missing.ok
    assert nowhere.status is None and nowhere.error.startswith("request failed")


# ---------------------------------------------------------------- User-Agent

def test_a_site_that_requires_a_contact_in_the_user_agent_answers_200(site):
    site.documents["/api/concept.json"] = Document(b'{"ok": true}', needs_contact=True)
    document = fetch_one(f"{site.url}/api/concept.json", ALLOW, user_agent=user_agent_for(EMAIL))
    assert document.status == 200
    agent = site.requests[-1].headers["User-Agent"]
    assert EMAIL in agent and agent.startswith("llm-code-deployment-system/")
    refused = fetch_one(f"{site.url}/api/concept.json", ALLOW, user_agent="python-requests")
    assert refused.status == 403 and refused.error.startswith("HTTP 403")


def test_fetch_settings_come_from_the_environment(site, tmp_path):
    site.documents["/api/concept.json"] = Document(b'{"ok": true}', needs_contact=True)
    url = f"{site.url}/api/concept.json"
    config = load_config({"DATA_DIR": str(tmp_path), "FETCH_ALLOW_PRIVATE": "true",
                          "FETCH_USER_AGENT": "Acme Research admin@acme.test"}, dotenv=False)
    [document] = fetch_brief_urls([url], email=EMAIL, config=config, deadline=Deadline(60))
    assert document.status == 200
    assert site.requests[-1].headers["User-Agent"] == "Acme Research admin@acme.test"
    shipped = load_config({"DATA_DIR": str(tmp_path)}, dotenv=False)
    assert shipped.fetch_allow_private == "false" and shipped.fetch_max_bytes == 5 * 1024 * 1024
    [document] = fetch_brief_urls([url], email=EMAIL, config=shipped, deadline=Deadline(60))
    assert document.error.startswith("refused:")
    assert len(site.requests) == 1


def test_https_connections_go_through_the_same_check(counter, site):
    document = fetch_one(f"https://localhost:{counter.port}/data.json")
    assert "loopback" in document.error and counter.connections == 0
    # allowed, the TLS handshake runs on the checked socket (here against a plain-HTTP server, so it fails)
    document = fetch_one(f"https://127.0.0.1:{site.port}/data.json", ALLOW)
    assert document.status is None and document.error.startswith("request failed")
