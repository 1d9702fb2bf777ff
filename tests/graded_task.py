"""A graded task in the graders' style: several files with content rules, checks of every kind.

Used by ``tests/test_check_kinds.py`` and the task benchmark. The brief asks
for a page whose title is fixed (a bare JavaScript check), a story of 30 to 50
words, an about.md of exactly three words (plain-English checks made
executable by the check writer) and a pelican drawing judged by a reader. The
first reply gets all four wrong; the repair reply fixes them.
"""

from __future__ import annotations

import json

TASK = "harbor-notes-12"
TITLE = "Harbor Notes 12"
BRIEF = (
    f'Publish a page titled "{TITLE}". Publish story.txt: a story about a lighthouse keeper of 30 to 50 '
    "words. Publish about.md containing exactly three words. Publish pelican.svg, an SVG drawing of a "
    "pelican. The page links to all three files and shows the word count of story.txt in #story-words."
)
BARE_JS = f'document.title === "{TITLE}"'
STORY_CHECK = "story.txt is a story of 30 to 50 words"
ABOUT_CHECK = "about.md contains exactly three words"
PELICAN_CHECK = "pelican.svg is rated by an LLM"
CHECKS = [BARE_JS, STORY_CHECK, ABOUT_CHECK, PELICAN_CHECK]

WORDS_JS = ("(async () => {{ const t = await (await fetch('./{path}')).text(); "
            "const n = t.trim().split(/\\s+/).filter(Boolean).length; return {test}; }})()")
WRITTEN = {"checks": [
    {"check": STORY_CHECK, "kind": "js", "js": WORDS_JS.format(path="story.txt", test="n >= 30 && n <= 50")},
    {"check": ABOUT_CHECK, "kind": "js", "js": WORDS_JS.format(path="about.md", test="n === 3")},
    {"check": PELICAN_CHECK, "kind": "judge",
     "rubric": "pelican.svg is valid SVG that recognisably draws a pelican (long beak with a pouch)."},
]}
VERDICT_FAIL = {"verdicts": [{"check": PELICAN_CHECK, "pass": False,
                              "reason": "The SVG is a single circle; nothing in it suggests a pelican."}]}
VERDICT_PASS = {"verdicts": [{"check": PELICAN_CHECK, "pass": True,
                              "reason": "A bird body, a long beak and a throat pouch: a pelican."}]}

LONG_STORY = " ".join(["The keeper climbed the tower every night and lit the lamp for ships."] * 6)  # 78 words
SHORT_STORY = ("Old Mara kept the lighthouse on the cape for forty years. Each night she climbed the stairs, "
               "trimmed the wick and watched the dark water, until the fishing boats came home safe.")  # 34 words
CIRCLE_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><circle cx="50" cy="50" r="40"/></svg>'
PELICAN_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="120"><ellipse cx="70" cy="70" rx="45" '
               'ry="28" fill="#ddd"/><circle cx="120" cy="40" r="14" fill="#ddd"/><path d="M132 40 L195 55 '
               'L132 60 Z" fill="#f90"/><path d="M132 58 Q160 85 190 56" fill="#fc6"/></svg>')


def index_html(title: str) -> str:
    """The page: links to the files and the story's word count in #story-words."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>Harbor notes</h1>
<p><a href="story.txt">Story</a> (<span id="story-words">…</span> words) · <a href="about.md">About</a> ·
<a href="pelican.svg">Pelican</a></p>
<script>
fetch('./story.txt').then(r => r.text()).then(t => {{
  document.querySelector('#story-words').textContent = t.trim().split(/\\s+/).length;
}});
</script></body></html>
"""


def files_reply(files: dict[str, str], note: str = "Here are the files.") -> str:
    """A model reply in the whole-file format."""
    blocks = [f"{path}\n```\n{content}\n```" for path, content in files.items()]
    return note + "\n\n" + "\n\n".join(blocks) + "\n"


FIRST_REPLY = files_reply({"index.html": index_html("Harbour Notes"), "story.txt": LONG_STORY,
                           "about.md": "All about the harbor.", "pelican.svg": CIRCLE_SVG,
                           "README.md": "# Harbor notes\n\nA small site.\n"})
REPAIR_REPLY = files_reply({"index.html": index_html(TITLE), "story.txt": SHORT_STORY,
                            "about.md": "Harbor lighthouse notes", "pelican.svg": PELICAN_SVG},
                           "The title, the story length, the about text and the drawing are fixed.")


def as_json(value: dict) -> str:
    """A reply holding ``value`` as JSON."""
    return json.dumps(value)
