"""The task suite of ``bench/tasks.py``: realistic graded tasks, written in the graders' style.

Each task has the grader's request (brief, checks, attachments) and, for the
scripted mode, what a fallible model would answer: a first reply with the
mistakes models really make (a story too long, a word count off by one, a
total rounded wrong, prices typed as strings, the wrong query parameter, an
SVG without a viewBox, a drawing that is not what was asked), the check
writer's JSON, the judge's verdicts and one repair reply. Between them the
tasks cover every kind of check: JavaScript with and without ``js:``,
plain-English checks on files (text length, exact word count, JSON shape,
exact attachment copy, SVG), on the DOM, under ``?param=``, and judged ones.

Data only: nothing here runs a model or a browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from tests import graded_task as harbor


@dataclass(frozen=True)
class GradedTask:
    """One task: the request's fields, and the scripted replies (generation, repair, writer, judge)."""

    name: str
    brief: str
    checks: list
    attachments: dict[str, bytes] = field(default_factory=dict)
    first_reply: str = ""
    repair_reply: str = ""
    written: dict = field(default_factory=dict)
    verdicts: list[dict] = field(default_factory=list)

    def request(self, nonce: str, secret: str) -> dict:
        """The grader's request body."""
        attachments = [{"name": name, "url": "data:text/plain;base64," + base64.b64encode(data).decode()}
                       for name, data in self.attachments.items()]
        return {"email": "bench@example.com", "secret": secret, "task": self.name, "round": 1, "nonce": nonce,
                "brief": self.brief, "checks": self.checks, "attachments": attachments}


def _words_js(path: str, test: str) -> str:
    """A written check: the word count ``n`` of a published file satisfies ``test``."""
    return (f"(async () => {{ const t = await (await fetch('./{path}')).text(); "
            f"const n = t.trim().split(/\\s+/).filter(Boolean).length; return {test}; }})()")


def _page(title: str, body: str, script: str = "") -> str:
    """A small HTML page."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
            f"<body>\n{body}\n<script>\n{script}\n</script></body></html>\n")


# ---------------------------------------------------------------- 1. files with length and word rules, judged SVG

HARBOR = GradedTask(
    name="harbor-notes", brief=harbor.BRIEF, checks=harbor.CHECKS, first_reply=harbor.FIRST_REPLY,
    repair_reply=harbor.REPAIR_REPLY, written=harbor.WRITTEN, verdicts=[harbor.VERDICT_FAIL, harbor.VERDICT_PASS])

# ---------------------------------------------------------------- 2. a value computed from an attachment, JSON shape

MENU_CSV = b"dish,price\nSoup,4.50\nSalad,6.00\nPasta,11.25\nFish,15.75\n"  # average 9.375 -> 9.38
MENU_SHA = hashlib.sha256(MENU_CSV).hexdigest()
MENU_SCRIPT = """fetch('./menu.csv').then(r => r.text()).then(t => {
  const prices = t.trim().split('\\n').slice(1).map(l => Number(l.split(',')[1]));
  const avg = prices.reduce((a, b) => a + b, 0) / prices.length;
  document.querySelector('#avg-price').textContent = %s;
});"""
MENU_PAGE = ('<h1>Blue Door</h1><p>Average dish price: $<span id="avg-price">…</span></p>'
             '<a href="restaurant.json">data</a>')


def _menu_json(price: object) -> str:
    """restaurant.json with each price written by ``price`` (a formatter)."""
    dishes = [{"name": n, "price": price(p)} for n, p in (("Soup", 4.5), ("Salad", 6.0), ("Pasta", 11.25),
                                                          ("Fish", 15.75))]
    return json.dumps({"name": "Blue Door", "dishes": dishes}, indent=2)


MENU = GradedTask(
    name="blue-door-menu",
    brief=("Publish a page titled 'Blue Door menu' that reads menu.csv (attached) and shows the average dish "
           "price, rounded to two decimals, in #avg-price. Publish restaurant.json as "
           '{"name": "Blue Door", "dishes": [{"name": <string>, "price": <number>}]} listing every dish of '
           "menu.csv, and publish menu.csv itself unchanged."),
    checks=["js: document.querySelector('#avg-price').textContent.trim() === '9.38'",
            "restaurant.json has a name and lists every dish of menu.csv with a numeric price",
            "menu.csv is published unchanged"],
    attachments={"menu.csv": MENU_CSV},
    first_reply=("index.html\n```html\n" + _page("Blue Door menu", MENU_PAGE, MENU_SCRIPT % "avg.toFixed(1)")
                 + "```\n\nrestaurant.json\n```json\n" + _menu_json(lambda p: f"{p:.2f}") + "\n```\n"),
    repair_reply=("index.html\n```html\n" + _page("Blue Door menu", MENU_PAGE, MENU_SCRIPT % "avg.toFixed(2)")
                  + "```\n\nrestaurant.json\n```json\n" + _menu_json(lambda p: p) + "\n```\n"),
    written={"checks": [
        {"check": "restaurant.json has a name and lists every dish of menu.csv with a numeric price", "kind": "js",
         "js": "(async () => { const d = await (await fetch('./restaurant.json')).json(); "
               "return typeof d.name === 'string' && Array.isArray(d.dishes) && d.dishes.length === 4 && "
               "d.dishes.every(x => typeof x.name === 'string' && typeof x.price === 'number'); })()"},
        {"check": "menu.csv is published unchanged", "kind": "js",
         "js": "(async () => { const b = await (await fetch('./menu.csv')).arrayBuffer(); "
               "const h = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', b)))"
               ".map(x => x.toString(16).padStart(2, '0')).join(''); return h === '" + MENU_SHA + "'; })()"},
    ]},
)

# ---------------------------------------------------------------- 3. ?param= on the DOM, SVG validity

CITY_SCRIPT = """const city = new URLSearchParams(location.search).get('%s') || 'Paris';
document.querySelector('#heading').textContent = 'Weather for ' + city;"""
CITY_BODY = '<h1 id="heading">Weather</h1><img src="logo.svg" alt="logo" width="48">'
LOGO_JS = ("(async () => { const t = await (await fetch('./logo.svg')).text(); "
           "const d = new DOMParser().parseFromString(t, 'image/svg+xml'); "
           "return !d.querySelector('parsererror') && d.documentElement.nodeName === 'svg' && "
           "d.documentElement.hasAttribute('viewBox'); })()")
CITY = GradedTask(
    name="city-weather",
    brief=("A page titled 'City Weather' that reads ?city= from its URL and shows 'Weather for <city>' in "
           "#heading ('Weather for Paris' without it). Publish logo.svg, a valid SVG with a viewBox."),
    checks=["document.querySelector('#heading') !== null",
            "With ?city=Oslo the heading reads Weather for Oslo",
            "logo.svg is valid SVG with a viewBox"],
    first_reply=("index.html\n```html\n" + _page("City Weather", CITY_BODY, CITY_SCRIPT % "town") + "```\n\n"
                 'logo.svg\n```xml\n<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48">'
                 '<circle cx="24" cy="24" r="20" fill="#39f"/></svg>\n```\n'),
    repair_reply=("index.html\n```html\n" + _page("City Weather", CITY_BODY, CITY_SCRIPT % "city") + "```\n\n"
                  'logo.svg\n```xml\n<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48" width="48" '
                  'height="48"><circle cx="24" cy="24" r="20" fill="#39f"/></svg>\n```\n'),
    written={"checks": [
        {"check": "With ?city=Oslo the heading reads Weather for Oslo", "kind": "js",
         "js": "document.querySelector('#heading').textContent.trim() === 'Weather for Oslo'"},
        {"check": "logo.svg is valid SVG with a viewBox", "kind": "js", "js": LOGO_JS},
    ]},
)

# ---------------------------------------------------------------- 4. DOM text rules and a judged tone

JARGON = ("Tidal predictions herein derive from harmonic constituent analysis of semidiurnal and diurnal "
          "components referenced to chart datum, incorporating nodal corrections, astronomical arguments, "
          "and station-specific amplitude and phase parameters; users should consult official hydrographic "
          "publications, apply local meteorological adjustments, and verify against real-time gauge "
          "observations before relying upon these values for navigation.")  # 52 words
FRIENDLY = ("Welcome! This page tells you when the sea comes in and goes out at our harbour, so you can plan "
            "a walk on the beach or a trip in a small boat. New to tides? Start with today's times below.")
TIDES = GradedTask(
    name="tide-times",
    brief=("A page titled 'Tide Times' with one welcome paragraph #intro of at most 40 words, friendly and "
           "clear for a beginner. Publish notes.txt with exactly three tips for reading a tide table, one per "
           "line."),
    checks=["document.querySelectorAll('#intro').length === 1",
            "The intro has at most 40 words",
            "notes.txt has exactly three non-empty lines",
            "The intro is friendly and clear for a beginner"],
    first_reply=("index.html\n```html\n" + _page("Tide Times", f'<p id="intro">{JARGON}</p>') + "```\n\n"
                 "notes.txt\n```\nHigh water is the top of the tide.\nLow water is the bottom.\n"
                 "Times are local.\nAlways check the date.\n```\n"),
    repair_reply=("index.html\n```html\n" + _page("Tide Times", f'<p id="intro">{FRIENDLY}</p>') + "```\n\n"
                  "notes.txt\n```\nHigh water is the top of the tide.\nLow water is the bottom.\n"
                  "Times are local.\n```\n"),
    written={"checks": [
        {"check": "The intro has at most 40 words", "kind": "js",
         "js": "document.querySelector('#intro').textContent.trim().split(/\\s+/).length <= 40"},
        {"check": "notes.txt has exactly three non-empty lines", "kind": "js",
         "js": "(async () => (await (await fetch('./notes.txt')).text()).split('\\n')"
               ".filter(l => l.trim()).length === 3)()"},
        {"check": "The intro is friendly and clear for a beginner", "kind": "judge",
         "rubric": "#intro in index.html is friendly, plain and understandable without tide jargon."},
    ]},
    verdicts=[{"verdicts": [{"check": "The intro is friendly and clear for a beginner", "pass": False,
                             "reason": "Dense jargon (harmonic constituents, chart datum): not for a beginner."}]},
              {"verdicts": [{"check": "The intro is friendly and clear for a beginner", "pass": True,
                             "reason": "Short, warm and plain; invites a beginner in."}]}],
)

TASKS = (HARBOR, MENU, CITY, TIDES)
