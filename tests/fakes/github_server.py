"""A stateful fake of GitHub's REST API and Pages, served over real HTTP on 127.0.0.1.

Laid out like GitHub Enterprise Server: the API under ``/api/v3``, repository
pages at ``/<owner>/<repo>``, Pages sites at ``/pages/<owner>/<repo>/``; every
URL it returns is absolute and uses its own host. Git objects are real (dulwich
hashes them exactly as git does). Pages builds follow scripts the test controls
(one status per poll of the latest build), and the site is served from the
commit of the last ``built`` build.

Every API request is validated against GitHub's published OpenAPI description
(``tests/fakes/openapi_spec.py``): a request it does not allow is answered 404
(unknown path or method) or 400 (invalid parameters or body) and recorded in
``violations``. Multi-segment path parameters such as a ref must be
percent-encoded (``heads%2Fmain``), as octokit sends them. Responses are
completed to the described shape (required fields the fake does not model get
placeholder values) and validated too; declared statuses only, since the
description omits many (500, 401...).

Faults (tests/fakes/faults.py): ``inject`` answers the next N requests to a
route with a fault, before the handler runs or after it (``after=True``: a POST
that took effect but whose answer was lost or garbled). A ``Delay`` holds the
request outside the fake's lock and then handles it, so a client that gave up
left a call of unknown outcome. ``secondary_rate_limit`` and
``primary_rate_limit`` build the 403s GitHub sends when rate limiting.

Never reaches the internet, never binds beyond loopback, never echoes a token.
"""

from __future__ import annotations

import base64
import io
import json
import mimetypes
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dulwich.index import commit_tree
from dulwich.object_store import MemoryObjectStore, iter_tree_contents
from dulwich.objects import Blob, Commit, Tree
from flask import Blueprint, Flask, Response, request
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.responses.exceptions import ResponseFinderError

from tests.fakes.faults import Delay, Disconnect, Fail, Fault, fault_response, json_response
from tests.fakes.github_actions import LOG_PATH, RUNS_POLL, FakeActions
from tests.fakes.openapi_spec import load_openapi, load_spec
from tests.fakes.server import LocalServer

API_PREFIX = "/api/v3"
SPEC_HOST = "https://api.github.com"
DEFAULT_TOKEN = "ghp_fake0123456789abcdefTOKEN"
DOCS = "https://docs.github.com/rest"
PLACEHOLDER_DATE = "2024-01-01T00:00:00Z"
FILE_MODES = {"100644", "100755", "120000"}
BUILD_POLL = "GET /repos/{owner}/{repo}/pages/builds/latest"
JsonDict = dict[str, Any]


class ApiError(Exception):
    """An error answer in GitHub's shape: status, message, optional field errors and headers."""

    def __init__(self, status: int, message: str, *, errors: list[JsonDict] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors, headers or {}

    def response(self) -> Response:
        """The JSON error response GitHub would send."""
        body = _error_body(self.status, self.message)
        if self.errors:
            body["errors"] = self.errors
        return json_response(body, self.status, self.headers)


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    path: str
    route: str
    status: int
    kind: str
    query: str = ""
    faulted: bool = False
    authorized: bool = False
    accept: str = ""

    @property
    def key(self) -> str:
        """``METHOD template`` for API calls (e.g. ``POST /repos/{owner}/{repo}/git/trees``)."""
        return f"{self.method} {self.route}"


@dataclass
class Rule:
    """Answer the next ``times`` requests matching ``method`` and the path regex with ``fault``.

    ``after``: the handler runs first and only its answer is replaced.
    """

    method: str
    pattern: re.Pattern[str]
    fault: Fault
    times: int
    after: bool

    def matches(self, method: str, path: str) -> bool:
        """True when this rule applies to the request and has uses left."""
        return self.times > 0 and method == self.method and bool(self.pattern.search(path))


@dataclass
class Hook:
    """Run ``callback`` before the next ``times`` requests matching ``method`` and the path regex."""

    method: str
    pattern: re.Pattern[str]
    callback: Callable[[str, str], None]
    times: int

    def matches(self, method: str, path: str) -> bool:
        """True when this hook applies to the request and has uses left."""
        return self.times > 0 and method == self.method and bool(self.pattern.search(path))


@dataclass
class Build:
    """One Pages build: the commit it builds and the statuses successive polls report."""

    number: int
    commit: str
    script: list[str]
    polls: int = 0
    created_at: str = field(default_factory=lambda: _now_iso())

    @property
    def status(self) -> str:
        """The status the current poll reports."""
        return self.script[min(self.polls, len(self.script) - 1)]


@dataclass
class FakeRepo:
    """A repository: its git objects, refs, settings and Pages state."""

    id: int
    owner: str
    name: str
    description: str | None
    private: bool
    default_branch: str
    store: MemoryObjectStore = field(default_factory=MemoryObjectStore)
    refs: dict[str, bytes] = field(default_factory=dict)
    pages: JsonDict | None = None
    builds: list[Build] = field(default_factory=list)
    live_commit: str | None = None
    deployed: dict[str, bytes] | None = None  # what a Pages-deploying workflow run published
    created_at: str = field(default_factory=lambda: _now_iso())

    @property
    def full_name(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    def head(self, branch: str) -> str | None:
        """The commit sha a branch points to, if the branch exists."""
        sha = self.refs.get(f"refs/heads/{branch}")
        return sha.decode() if sha else None

    def commit(self, sha: str) -> Commit:
        """A commit object by sha, or a 404/422 ApiError."""
        obj = self.object(sha)
        if not isinstance(obj, Commit):
            raise ApiError(422, f"Object {sha} is not a commit")
        return obj

    def object(self, sha: str) -> Any:
        """Any git object by sha, or a 404 ApiError."""
        key = sha.encode()
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or key not in self.store:
            raise ApiError(404, "Not Found")
        return self.store[key]

    def files(self, commit_sha: str) -> dict[str, bytes]:
        """Every file of a commit's tree, by path."""
        tree = self.commit(commit_sha).tree
        return {e.path.decode(): self.store[e.sha].data for e in iter_tree_contents(self.store, tree)}


class ShapeFiller:
    """Completes a response body to its described schema: missing required fields get placeholders."""

    def __init__(self, spec: JsonDict, base_url: str):
        self.spec = spec
        self.base_url = base_url

    def resolve(self, schema: JsonDict) -> JsonDict:
        """Follow ``$ref`` pointers inside the description."""
        while "$ref" in schema:
            node: Any = self.spec
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def response_schema(self, template: str, method: str, status: int) -> JsonDict | None:
        """The JSON schema of a described response, if the description has one."""
        operation = self.spec["paths"].get(template, {}).get(method.lower(), {})
        described = operation.get("responses", {}).get(str(status))
        if described is None:
            return None
        content = self.resolve(described).get("content", {}).get("application/json", {})
        return content.get("schema")

    def conform(self, schema: JsonDict, value: Any) -> Any:
        """``value`` with the required fields of ``schema`` (recursively) filled in."""
        schema = self.resolve(schema)
        for part in schema.get("allOf", []):
            value = self.conform(part, value)
        if isinstance(value, dict) and _alternatives(schema):
            value = self.conform(self._pick(schema, value), value)
        if isinstance(value, dict) and ("properties" in schema or schema.get("type") == "object"):
            value = self._fill_object(schema, value)
        if isinstance(value, list) and "items" in schema:
            value = [self.conform(schema["items"], item) for item in value]
        return value

    def _fill_object(self, schema: JsonDict, value: JsonDict) -> JsonDict:
        """Fill an object's missing required properties and recurse into the present ones."""
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                value[name] = self.placeholder(properties.get(name, {}), name)
        for name, sub in properties.items():
            if value.get(name) is not None:
                value[name] = self.conform(sub, value[name])
        return value

    def _pick(self, schema: JsonDict, value: JsonDict) -> JsonDict:
        """The oneOf/anyOf branch to fill: the discriminated one, else the first."""
        discriminator = schema.get("discriminator") or {}
        mapping = discriminator.get("mapping", {})
        chosen = value.get(discriminator.get("propertyName", ""))
        return {"$ref": mapping[chosen]} if chosen in mapping else _alternatives(schema)[0]

    def placeholder(self, schema: JsonDict, name: str, *, allow_null: bool = True) -> Any:
        """A value that satisfies ``schema`` for a field the fake does not model."""
        schema = self.resolve(schema)
        if "enum" in schema:
            return schema["enum"][0]
        if allow_null and schema.get("nullable"):
            return None
        if "allOf" in schema:
            return self.conform(schema, {})
        if alternatives := _alternatives(schema):
            return self.placeholder(alternatives[0], name, allow_null=False)
        return self._scalar(schema, name)

    def _scalar(self, schema: JsonDict, name: str) -> Any:
        """A placeholder by type and format."""
        kind, fmt = schema.get("type"), schema.get("format")
        if kind == "string":
            if fmt == "date-time":
                return PLACEHOLDER_DATE
            if fmt == "uri" or name.endswith("url"):
                return f"{self.base_url}/"
            return "octocat@users.noreply.example" if fmt == "email" else ""
        defaults: dict[str | None, Any] = {"integer": 0, "number": 0, "boolean": False, "array": []}
        if kind in defaults:
            return defaults[kind]
        return self.conform(schema, {}) if kind == "object" or "properties" in schema else None


class FakeGitHub:
    """The fake server: state, fault injection, a call log and the OpenAPI checks.

    Knobs a test may set: ``honour_auto_init`` (False: repositories start empty),
    ``default_branch`` (for new repositories), ``build_on_push`` (False: a push
    starts no Pages build), ``default_build_script`` and ``queue_builds``
    (statuses of builds), ``latency`` (seconds added to every request, for
    benchmarks), ``oauth_scopes`` and ``token_expiration`` (headers of ``GET /user``,
    None: not sent, as for fine-grained tokens). Read back: ``calls``, ``api_calls()``, ``site_calls()``,
    ``violations``, ``repo()``, ``history()``.
    """

    def __init__(self, *, token: str = DEFAULT_TOKEN, login: str = "octo-user", validate: bool = True):
        self.token = token
        self.login = login
        self.validate = validate
        self.honour_auto_init = True
        self.default_branch = "main"
        self.build_on_push = True
        self.default_build_script: list[str] = ["building", "built"]
        self.build_scripts: list[list[str]] = []
        self.latency = 0.0
        self.oauth_scopes: str | None = None
        self.workflow_pushes_allowed = True  # False: a ref update adding or changing a workflow file is refused
        self.token_expiration: str | None = None
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.repos: dict[str, FakeRepo] = {}
        self.rules: list[Rule] = []
        self.hooks: list[Hook] = []
        self.actions = FakeActions(self)
        self._lock = threading.RLock()
        self._ids = iter(range(1000, 10**9))
        self._openapi = load_openapi() if validate else None
        self.app = self._build_app()
        self._server = LocalServer(self._wsgi)
        self.url = self._server.url
        self.api_url = self.url + API_PREFIX
        self._shapes = ShapeFiller(load_spec(), self.url) if validate else None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FakeGitHub:
        """Start serving on the loopback port."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wsgi(self, environ: JsonDict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one request at a time (state is shared), after the injected latency, any hook and any Delay.

        A Disconnect is applied here, since it answers nothing; any other fault of the matching rule waits
        in ``environ["fake.rule"]`` for the app's before or after step.
        """
        if self.latency:
            time.sleep(self.latency)
        method, path = environ["REQUEST_METHOD"], _raw_path(environ)
        with self._lock:
            due = [hook for hook in self.hooks if hook.matches(method, path)]
            for hook in due:
                hook.times -= 1
            rule = next((r for r in self.rules if r.matches(method, path)), None)
            if rule is not None:
                rule.times -= 1
        fault = rule.fault if rule else None
        if due or isinstance(fault, Delay):  # read the whole body first: a client that gives up cuts nothing short
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length else b"")
        for hook in due:
            hook.callback(method, path)
        if isinstance(fault, Delay):
            time.sleep(fault.seconds)
            fault = fault.then
        if isinstance(fault, Disconnect):
            if rule.after:
                with self._lock:
                    list(self.app(environ, lambda *args, **kwargs: None))
            return fault_response(fault, environ, _error_body)(environ, start_response)
        if fault is not None:
            environ["fake.rule"] = (fault, rule.after)
        with self._lock:
            return list(self.app(environ, start_response))

    # -- controls for tests --------------------------------------------------------------

    def inject(self, method: str, path_pattern: str, fault: Fault, *, times: int = 1, after: bool = False) -> Rule:
        """Answer the next ``times`` requests matching ``method`` and the path regex with ``fault``.

        ``after``: the handler runs first (a POST takes effect and only its answer is lost or garbled).
        """
        rule = Rule(method.upper(), re.compile(path_pattern), fault, times, after)
        self.rules.append(rule)
        return rule

    def on_call(self, method: str, path_pattern: str, callback: Callable[[str, str], None], *,
                times: int = 1) -> Hook:
        """Call ``callback(method, path)`` before handling the next ``times`` matching requests.

        Runs outside the fake's lock, so a callback may block or stop the client
        (crash-recovery tests kill the service at a chosen call).
        """
        hook = Hook(method.upper(), re.compile(path_pattern), callback, times)
        self.hooks.append(hook)
        return hook

    def queue_builds(self, *scripts: list[str]) -> None:
        """Status scripts for the next Pages builds, in order (then ``default_build_script``)."""
        self.build_scripts.extend(list(s) for s in scripts)

    def add_repo(self, name: str, files: dict[str, bytes], message: str, *, owner: str | None = None,
                 description: str = "") -> str:
        """Create a repository holding other work on ``main``; return its commit sha."""
        repo = self._new_repo(owner or self.login, name, description, private=False)
        repo.default_branch = "main"
        tree = self._tree_from_files(repo, files)
        sha = self._make_commit(repo, tree, [], message, None, None)
        repo.refs["refs/heads/main"] = sha.encode()
        return sha

    def repo(self, name: str, owner: str | None = None) -> FakeRepo:
        """A repository by name (default owner: the token's user)."""
        return self.repos[f"{owner or self.login}/{name}"]

    def history(self, name: str, owner: str | None = None) -> list[Commit]:
        """The first-parent history of ``main``, newest first."""
        repo = self.repo(name, owner)
        chain, sha = [], repo.head("main")
        while sha:
            commit = repo.commit(sha)
            chain.append(commit)
            sha = commit.parents[0].decode() if commit.parents else None
        return chain

    def api_calls(self, *, polling: bool = False) -> list[str]:
        """``METHOD template`` of every API call, without Pages status polls unless asked."""
        return [c.key for c in self.calls if c.kind == "api" and (polling or c.key not in (BUILD_POLL, RUNS_POLL))]

    def site_calls(self) -> list[Call]:
        """Every request to a Pages site."""
        return [c for c in self.calls if c.kind == "site"]

    # -- the Flask app -------------------------------------------------------------------

    def _build_app(self) -> Flask:
        """Routes: the API blueprint, repository pages and Pages sites."""
        app = Flask(__name__)
        app.register_blueprint(self._api_blueprint(), url_prefix=API_PREFIX)
        app.add_url_rule("/pages/<owner>/<repo>/", "site_root", self._site, defaults={"path": ""})
        app.add_url_rule("/pages/<owner>/<repo>/<path:path>", "site", self._site)
        app.add_url_rule("/<owner>/<repo>", "repo_page", self._repo_page)
        app.add_url_rule(f"{LOG_PATH}/<int:job_id>", "actions_log", self.actions.log_view)
        app.before_request(self._before)
        app.after_request(self._after)
        app.register_error_handler(ApiError, lambda e: e.response())
        return app

    def _api_blueprint(self) -> Blueprint:
        """Every REST route the fake implements, named by GitHub's path templates."""
        bp = Blueprint("api", __name__)
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/user", self._get_user),
            ("POST", "/user/repos", self._create_repo),
            ("GET", "/repos/<owner>/<repo>", self._get_repo),
            ("GET", "/repos/<owner>/<repo>/branches/<branch>", self._get_branch),
            ("POST", "/repos/<owner>/<repo>/branches/<branch>/rename", self._rename_branch),
            ("POST", "/repos/<owner>/<repo>/git/blobs", self._create_blob),
            ("GET", "/repos/<owner>/<repo>/git/blobs/<file_sha>", self._get_blob),
            ("POST", "/repos/<owner>/<repo>/git/trees", self._create_tree),
            ("GET", "/repos/<owner>/<repo>/git/trees/<path:tree_sha>", self._get_tree),
            ("POST", "/repos/<owner>/<repo>/git/commits", self._create_commit),
            ("GET", "/repos/<owner>/<repo>/git/commits/<commit_sha>", self._get_commit),
            ("POST", "/repos/<owner>/<repo>/git/refs", self._create_ref),
            ("GET", "/repos/<owner>/<repo>/git/ref/<path:ref>", self._get_ref),
            ("PATCH", "/repos/<owner>/<repo>/git/refs/<path:ref>", self._update_ref),
            ("PUT", "/repos/<owner>/<repo>/contents/<path:path>", self._put_contents),
            ("POST", "/repos/<owner>/<repo>/pages", self._create_pages),
            ("GET", "/repos/<owner>/<repo>/pages", self._get_pages),
            ("PUT", "/repos/<owner>/<repo>/pages", self._update_pages),
            ("POST", "/repos/<owner>/<repo>/pages/builds", self._request_build),
            ("GET", "/repos/<owner>/<repo>/pages/builds/latest", self._latest_build),
            *self.actions.routes(),
        ]
        for method, rule, view in routes:
            bp.add_url_rule(rule, f"{method} {rule}", view, methods=[method])
        return bp

    # -- request pipeline: validate, fault, authenticate ---------------------------------------

    def _before(self) -> Response | None:
        """Validate API requests against the description, then apply faults and authentication."""
        if not self._is_api():
            return self._fault(after=False)
        if (rejected := self._reject_invalid()) is not None:
            return rejected
        if (faulted := self._fault(after=False)) is not None:
            return faulted
        return self._authenticate()

    def _is_api(self) -> bool:
        return request.path.startswith(API_PREFIX + "/")

    def _reject_invalid(self) -> Response | None:
        """404 or 400 (and a recorded violation) for a request GitHub's description does not allow."""
        if self._openapi is None:
            return None
        where = f"{request.method} {_raw_path(request.environ)}"
        try:
            self._openapi.validate_request(_SpecRequest(request))
        except PathError as exc:
            return self._violation(404, "Not Found", f"{where}: {exc}")
        except Exception as exc:  # openapi-core raises one class per kind of invalid request
            return self._violation(400, "Problems parsing JSON", f"{where}: {exc}")
        if request.url_rule is None:
            return self._violation(404, "Not Found", f"{where}: allowed but not faked")
        return None

    def _violation(self, status: int, message: str, detail: str) -> Response:
        """Record a disallowed request and answer it."""
        self.violations.append(f"request {detail}")
        request.environ["fake.violation"] = True
        return ApiError(status, message).response()

    def _fault(self, *, after: bool) -> Response | None:
        """The answer of the request's injected fault when it is due at this step (marks the call faulted)."""
        fault, fault_after = request.environ.get("fake.rule", (None, False))
        if fault is None or fault_after != after:
            return None
        request.environ["fake.fault"] = True
        return fault_response(fault, request.environ, _error_body)

    def _authenticate(self) -> Response | None:
        """401 unless the Authorization header carries the token (``token`` or ``Bearer``)."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if not header:
            return ApiError(401, "Requires authentication").response()
        if scheme.lower() not in ("token", "bearer") or value != self.token:
            return ApiError(401, "Bad credentials").response()
        return None

    def _after(self, response: Response) -> Response:
        """Apply after-faults, complete and validate API responses, and log the call."""
        if faulted := self._fault(after=True):
            response = faulted
        elif self._is_api() and not request.environ.get("fake.violation"):
            response = self._shape(response)
        self._log(response)
        return response

    def _shape(self, response: Response) -> Response:
        """Fill a JSON response to its described schema, then validate it."""
        template = _template()
        if self._shapes and template and response.is_json and not request.environ.get("fake.fault"):
            schema = self._shapes.response_schema(template, request.method, response.status_code)
            if schema is not None:
                body = self._shapes.conform(schema, response.get_json())
                response.set_data(json.dumps(body))
        self._check_response(response)
        return response

    def _check_response(self, response: Response) -> None:
        """Record a response that its described schema rejects (undeclared statuses pass)."""
        if self._openapi is None or request.environ.get("fake.fault"):
            return
        try:
            self._openapi.validate_response(_SpecRequest(request), WerkzeugOpenAPIResponse(response))
        except ResponseFinderError:
            return
        except Exception as exc:
            where = f"{request.method} {_raw_path(request.environ)}"
            self.violations.append(f"response {where} {response.status_code}: {exc}")

    def _log(self, response: Response) -> None:
        kind = "api" if self._is_api() else ("site" if request.path.startswith("/pages/") else "html")
        route = _template() or request.path
        self.calls.append(Call(request.method, request.path, route, response.status_code, kind,
                               request.query_string.decode(), bool(request.environ.get("fake.fault")),
                               "Authorization" in request.headers, request.headers.get("Accept", "")))

    # -- users and repositories ------------------------------------------------------------

    def _get_user(self) -> Response:
        return json_response({**self._user(self.login), "user_view_type": "private", "name": "Octo User",
                      "email": f"{self.login}@users.noreply.example"}, 200, self._token_headers())

    def _token_headers(self) -> dict[str, str]:
        """What GitHub says about the token on ``GET /user``: classic scopes and expiry, when set."""
        headers = {"X-OAuth-Scopes": self.oauth_scopes, "GitHub-Authentication-Token-Expiration": self.token_expiration}
        return {name: value for name, value in headers.items() if value is not None}

    def _user(self, login: str) -> JsonDict:
        return {"login": login, "id": 1, "node_id": "U_1", "type": "User", "site_admin": False,
                "url": f"{self.api_url}/users/{login}", "html_url": f"{self.url}/{login}"}

    def _create_repo(self) -> Response:
        body = request.get_json()
        name = body["name"]
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name) or name in (".", ".."):
            raise ApiError(422, "Repository creation failed.",
                           errors=[{"resource": "Repository", "code": "custom", "field": "name",
                                    "message": "name is invalid"}])
        if f"{self.login}/{name}" in self.repos:
            raise ApiError(422, "Repository creation failed.",
                           errors=[{"resource": "Repository", "code": "custom", "field": "name",
                                    "message": "name already exists on this account"}])
        repo = self._new_repo(self.login, name, body.get("description"), bool(body.get("private")))
        if body.get("auto_init") and self.honour_auto_init:
            self._auto_init(repo)
        return json_response(self._repo_json(repo), 201, {"Location": f"{self.api_url}/repos/{repo.full_name}"})

    def _new_repo(self, owner: str, name: str, description: str | None, private: bool) -> FakeRepo:
        repo = FakeRepo(next(self._ids), owner, name, description, private, self.default_branch)
        self.repos[repo.full_name] = repo
        return repo

    def _auto_init(self, repo: FakeRepo) -> None:
        """GitHub's ``auto_init``: a first commit holding a README on the default branch."""
        readme = f"# {repo.name}\n" + (f"\n{repo.description}\n" if repo.description else "")
        tree = self._tree_from_files(repo, {"README.md": readme.encode()})
        sha = self._make_commit(repo, tree, [], "Initial commit", None, None)
        repo.refs[f"refs/heads/{repo.default_branch}"] = sha.encode()

    def _get_repo(self, owner: str, repo: str) -> Response:
        return json_response(self._repo_json(self._find(owner, repo)))

    def _find(self, owner: str, name: str) -> FakeRepo:
        repo = self.repos.get(f"{owner}/{name}")
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def _repo_json(self, repo: FakeRepo) -> JsonDict:
        api = f"{self.api_url}/repos/{repo.full_name}"
        return {"id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": repo.full_name,
                "owner": self._user(repo.owner), "private": repo.private,
                "visibility": "private" if repo.private else "public", "html_url": f"{self.url}/{repo.full_name}",
                "description": repo.description, "url": api, "default_branch": repo.default_branch,
                "has_pages": repo.pages is not None, "created_at": repo.created_at, "updated_at": _now_iso(),
                "pushed_at": _now_iso(), "size": 0, "fork": False}

    def _get_branch(self, owner: str, repo: str, branch: str) -> Response:
        found = self._find(owner, repo)
        sha = found.head(branch)
        if sha is None:
            raise ApiError(404, "Branch not found")
        return json_response(self._branch_json(found, branch, sha))

    def _branch_json(self, repo: FakeRepo, branch: str, sha: str) -> JsonDict:
        api = f"{self.api_url}/repos/{repo.full_name}"
        return {"name": branch, "commit": self._rest_commit_json(repo, sha), "protected": False,
                "_links": {"self": f"{api}/branches/{branch}", "html": f"{self.url}/{repo.full_name}/tree/{branch}"},
                "protection_url": f"{api}/branches/{branch}/protection",
                "protection": {"enabled": False, "required_status_checks": {"enforcement_level": "off",
                                                                            "contexts": []}}}

    def _rest_commit_json(self, repo: FakeRepo, sha: str) -> JsonDict:
        """The ``commit`` object of the Repos API (wrapping the git commit)."""
        git = self._git_commit_json(repo, sha)
        api = f"{self.api_url}/repos/{repo.full_name}"
        inner = {key: git[key] for key in ("author", "committer", "message", "tree", "verification")}
        return {"sha": sha, "node_id": f"C_{sha}", "url": f"{api}/commits/{sha}", "html_url": git["html_url"],
                "comments_url": f"{api}/commits/{sha}/comments", "parents": git["parents"],
                "commit": {**inner, "url": git["url"], "comment_count": 0},
                "author": self._user(repo.owner), "committer": self._user(repo.owner)}

    def _rename_branch(self, owner: str, repo: str, branch: str) -> Response:
        found = self._find(owner, repo)
        new_name = request.get_json()["new_name"]
        sha = found.refs.pop(f"refs/heads/{branch}", None)
        if sha is None:
            raise ApiError(404, "Branch not found")
        found.refs[f"refs/heads/{new_name}"] = sha
        if found.default_branch == branch:
            found.default_branch = new_name
        if found.pages and found.pages["source"]["branch"] == branch:
            found.pages["source"]["branch"] = new_name
        return json_response(self._branch_json(found, new_name, sha.decode()), 201)

    def _repo_page(self, owner: str, repo: str) -> Response:
        """The repository's HTML page (public repositories only), listing the files on main."""
        found = self.repos.get(f"{owner}/{repo}")
        if found is None or found.private:
            return Response("Not Found", 404)
        sha = found.head(found.default_branch)
        names = sorted(found.files(sha)) if sha else []
        items = "".join(f"<li>{name}</li>" for name in names)
        return Response(f"<!doctype html><title>{found.full_name}</title><ul>{items}</ul>", 200,
                        mimetype="text/html")

    # -- git data -----------------------------------------------------------------------

    def _git_repo(self, owner: str, repo: str) -> FakeRepo:
        """A repository for the Git Data API: 409 while it has no commit, as on GitHub."""
        found = self._find(owner, repo)
        if not found.refs:
            raise ApiError(409, "Git Repository is empty.")
        return found

    def _create_blob(self, owner: str, repo: str) -> Response:
        found = self._git_repo(owner, repo)
        body = request.get_json()
        data = _decode(body["content"], body.get("encoding", "utf-8"))
        sha = self._add(found, Blob.from_string(data))
        return json_response({"sha": sha, "url": f"{self.api_url}/repos/{found.full_name}/git/blobs/{sha}"}, 201)

    def _get_blob(self, owner: str, repo: str, file_sha: str) -> Response:
        found = self._git_repo(owner, repo)
        blob = found.object(file_sha)
        if not isinstance(blob, Blob):
            raise ApiError(422, "Object is not a blob")
        encoded = base64.encodebytes(blob.data).decode()
        return json_response({"sha": file_sha, "node_id": f"B_{file_sha}", "size": len(blob.data), "content": encoded,
                      "encoding": "base64", "url": f"{self.api_url}/repos/{found.full_name}/git/blobs/{file_sha}"})

    def _create_tree(self, owner: str, repo: str) -> Response:
        found = self._git_repo(owner, repo)
        body = request.get_json()
        entries = self._flatten(found, body["base_tree"]) if body.get("base_tree") else {}
        for item in body["tree"]:
            self._apply_entry(found, entries, item)
        tree = commit_tree(found.store, [(p.encode(), sha, int(mode, 8)) for p, (mode, sha) in entries.items()])
        return json_response(self._tree_json(found, tree.decode(), recursive=False), 201)

    def _flatten(self, repo: FakeRepo, tree_sha: str) -> dict[str, tuple[str, bytes]]:
        """path -> (mode, sha) for every file under a tree."""
        if not isinstance(repo.object(tree_sha), Tree):
            raise ApiError(422, "base_tree is not a tree")
        return {e.path.decode(): (f"{e.mode:o}", e.sha) for e in iter_tree_contents(repo.store, tree_sha.encode())}

    def _apply_entry(self, repo: FakeRepo, entries: dict[str, tuple[str, bytes]], item: JsonDict) -> None:
        """Add, replace or (sha null) delete one path, as GitHub's tree API does."""
        path, mode = item["path"].strip("/"), item["mode"]
        if "content" in item and item.get("sha") is not None:
            raise ApiError(422, "Use either tree.sha or content, not both")
        if "content" not in item and "sha" in item and item["sha"] is None:
            for key in [k for k in entries if k == path or k.startswith(path + "/")]:
                del entries[key]
            return
        if item["type"] == "tree" or mode == "040000":
            for sub, value in self._flatten(repo, item["sha"]).items():
                entries[f"{path}/{sub}"] = value
            return
        if mode not in FILE_MODES or item["type"] != "blob":
            raise ApiError(422, f"GitRPC::BadObjectState: unsupported entry {path}")
        entries[path] = (mode, self._entry_blob(repo, item))

    def _entry_blob(self, repo: FakeRepo, item: JsonDict) -> bytes:
        """The blob sha of a tree entry, writing inline ``content`` as a new blob."""
        if "content" in item:
            return self._add(repo, Blob.from_string(item["content"].encode())).encode()
        if not isinstance(repo.object(item["sha"]), Blob):
            raise ApiError(422, f"Invalid tree info: {item['sha']} is not a blob")
        return item["sha"].encode()

    def _get_tree(self, owner: str, repo: str, tree_sha: str) -> Response:
        found = self._git_repo(owner, repo)
        sha = self._tree_of(found, tree_sha)
        return json_response(self._tree_json(found, sha, recursive="recursive" in request.args))

    def _tree_of(self, repo: FakeRepo, name: str) -> str:
        """A tree sha from a tree sha, a commit sha or a branch name."""
        if head := repo.head(name):
            name = head
        obj = repo.object(name)
        if isinstance(obj, Commit):
            return obj.tree.decode()
        if not isinstance(obj, Tree):
            raise ApiError(422, "Not a tree")
        return name

    def _tree_json(self, repo: FakeRepo, sha: str, *, recursive: bool) -> JsonDict:
        api = f"{self.api_url}/repos/{repo.full_name}/git"
        tree = sha.encode()
        entries = iter_tree_contents(repo.store, tree, include_trees=True) if recursive else \
            repo.store[tree].iteritems()
        items = []
        for entry in entries:
            if not entry.path:
                continue
            obj, is_tree = repo.store[entry.sha], entry.mode == 0o40000
            item = {"path": entry.path.decode(), "mode": f"{entry.mode:06o}", "sha": entry.sha.decode(),
                    "type": "tree" if is_tree else "blob",
                    "url": f"{api}/{'trees' if is_tree else 'blobs'}/{entry.sha.decode()}"}
            if not is_tree:
                item["size"] = len(obj.data)
            items.append(item)
        return {"sha": sha, "url": f"{api}/trees/{sha}", "tree": items, "truncated": False}

    def _create_commit(self, owner: str, repo: str) -> Response:
        found = self._git_repo(owner, repo)
        body = request.get_json()
        if not isinstance(found.object(body["tree"]), Tree):
            raise ApiError(422, "Tree SHA does not exist")
        for parent in body.get("parents", []):
            found.commit(parent)
        sha = self._make_commit(found, body["tree"], body.get("parents", []), body["message"],
                                body.get("author"), body.get("committer"))
        return json_response(self._git_commit_json(found, sha), 201)

    def _get_commit(self, owner: str, repo: str, commit_sha: str) -> Response:
        found = self._git_repo(owner, repo)
        return json_response(self._git_commit_json(found, found.commit(commit_sha).id.decode()))

    def _make_commit(self, repo: FakeRepo, tree: str, parents: list[str], message: str,
                     author: JsonDict | None, committer: JsonDict | None) -> str:
        """Write a commit object; identities default to the token's user, now."""
        me = {"name": "Octo User", "email": f"{repo.owner}@users.noreply.example"}
        author = author or me
        committer = committer or author
        commit = Commit()
        commit.tree = tree.encode()
        commit.parents = [p.encode() for p in parents]
        commit.author, (commit.author_time, commit.author_timezone) = _identity(author), _when(author)
        commit.committer, (commit.commit_time, commit.commit_timezone) = _identity(committer), _when(committer)
        commit.message = message.encode()
        return self._add(repo, commit)

    def _git_commit_json(self, repo: FakeRepo, sha: str) -> JsonDict:
        commit = repo.commit(sha)
        api = f"{self.api_url}/repos/{repo.full_name}/git"
        return {"sha": sha, "node_id": f"C_{sha}", "url": f"{api}/commits/{sha}",
                "html_url": f"{self.url}/{repo.full_name}/commit/{sha}",
                "author": _person(commit.author, commit.author_time, commit.author_timezone),
                "committer": _person(commit.committer, commit.commit_time, commit.commit_timezone),
                "message": commit.message.decode(), "tree": {"sha": commit.tree.decode(),
                                                               "url": f"{api}/trees/{commit.tree.decode()}"},
                "parents": [{"sha": p.decode(), "url": f"{api}/commits/{p.decode()}",
                             "html_url": f"{self.url}/{repo.full_name}/commit/{p.decode()}"} for p in commit.parents],
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                                 "verified_at": None}}

    def _add(self, repo: FakeRepo, obj: Blob | Tree | Commit) -> str:
        repo.store.add_object(obj)
        return obj.id.decode()

    def _tree_from_files(self, repo: FakeRepo, files: dict[str, bytes]) -> str:
        blobs = [(path.encode(), self._add(repo, Blob.from_string(data)).encode(), 0o100644)
                 for path, data in files.items()]
        return commit_tree(repo.store, blobs).decode()

    # -- refs and contents ------------------------------------------------------------------

    def _create_ref(self, owner: str, repo: str) -> Response:
        found = self._git_repo(owner, repo)
        body = request.get_json()
        ref, sha = body["ref"], body["sha"]
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name must start with 'refs/' and have at least two slashes.")
        if ref in found.refs:
            raise ApiError(422, "Reference already exists")
        self._move_ref(found, ref, found.commit(sha).id.decode())
        return json_response(self._ref_json(found, ref), 201)

    def _get_ref(self, owner: str, repo: str, ref: str) -> Response:
        found = self._git_repo(owner, repo)
        if f"refs/{ref}" not in found.refs:
            raise ApiError(404, "Not Found")
        return json_response(self._ref_json(found, f"refs/{ref}"))

    def _update_ref(self, owner: str, repo: str, ref: str) -> Response:
        found = self._git_repo(owner, repo)
        body = request.get_json()
        full, sha = f"refs/{ref}", found.commit(body["sha"]).id.decode()
        if full not in found.refs:
            raise ApiError(422, "Reference does not exist")
        if not body.get("force") and not self._descends(found, sha, found.refs[full].decode()):
            raise ApiError(422, "Update is not a fast forward")
        self._move_ref(found, full, sha)
        return json_response(self._ref_json(found, full))

    def _descends(self, repo: FakeRepo, sha: str, ancestor: str) -> bool:
        """True when ``ancestor`` is ``sha`` or one of its ancestors."""
        pending, seen = [sha], set()
        while pending:
            current = pending.pop()
            if current == ancestor:
                return True
            if current not in seen:
                seen.add(current)
                pending.extend(p.decode() for p in repo.commit(current).parents)
        return False

    def _ref_json(self, repo: FakeRepo, ref: str) -> JsonDict:
        sha = repo.refs[ref].decode()
        api = f"{self.api_url}/repos/{repo.full_name}/git"
        return {"ref": ref, "node_id": f"REF_{repo.id}_{ref}", "url": f"{api}/{ref}",
                "object": {"type": "commit", "sha": sha, "url": f"{api}/commits/{sha}"}}

    def _move_ref(self, repo: FakeRepo, ref: str, sha: str) -> None:
        """Point a ref at a commit; a push to the Pages branch starts a build."""
        self._refuse_workflow_push(repo, ref, sha)
        repo.refs[ref] = sha.encode()
        if ref == "refs/heads/main":
            self.actions.on_push(repo, sha)
        legacy = repo.pages is not None and repo.pages.get("build_type", "legacy") == "legacy"
        if self.build_on_push and legacy and ref == f"refs/heads/{repo.pages['source']['branch']}":
            self._start_build(repo, sha)

    def _refuse_workflow_push(self, repo: FakeRepo, ref: str, sha: str) -> None:
        """GitHub's 422 for a token without the workflow permission moving a ref onto new workflow files."""
        if self.workflow_pushes_allowed:
            return
        old = repo.refs.get(ref)
        before = repo.files(old.decode()) if old else {}
        changed = sorted(p for p, data in repo.files(sha).items()
                         if p.startswith(".github/workflows/") and before.get(p) != data)
        if changed:
            raise ApiError(422, f"refusing to allow a Personal Access Token to create or update workflow "
                                f"`{changed[0]}` without `workflow` scope")

    def _put_contents(self, owner: str, repo: str, path: str) -> Response:
        """Create a file with one commit (the Contents API also works on an empty repository)."""
        found = self._find(owner, repo)
        body = request.get_json()
        branch = body.get("branch") or found.default_branch
        head = found.head(branch)
        files = found.files(head) if head else {}
        if path in files and not body.get("sha"):
            raise ApiError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
        files[path] = base64.b64decode(body["content"])
        sha = self._make_commit(found, self._tree_from_files(found, files), [head] if head else [],
                                body["message"], body.get("author"), body.get("committer"))
        self._move_ref(found, f"refs/heads/{branch}", sha)
        blob = Blob.from_string(files[path]).id.decode()
        content = {"name": path.rsplit("/", 1)[-1], "path": path, "sha": blob, "size": len(files[path]),
                   "type": "file", "url": f"{self.api_url}/repos/{found.full_name}/contents/{path}"}
        return json_response({"content": content, "commit": self._git_commit_json(found, sha)}, 201)

    # -- Pages ------------------------------------------------------------------------

    def _create_pages(self, owner: str, repo: str) -> Response:
        found = self._find(owner, repo)
        if found.pages is not None:
            raise ApiError(409, "GitHub Pages is already enabled.")
        source = (request.get_json() or {}).get("source") or {"branch": found.default_branch}
        head = found.head(source["branch"])
        if head is None:
            raise ApiError(422, f"The {source['branch']} branch must exist before GitHub Pages can be built.")
        found.pages = {"source": {"branch": source["branch"], "path": source.get("path", "/")}}
        if (request.get_json() or {}).get("build_type") == "workflow":
            found.pages["build_type"] = "workflow"
        self._start_build(found, head)
        return json_response(self._pages_json(found), 201)

    def _get_pages(self, owner: str, repo: str) -> Response:
        found = self._find(owner, repo)
        if found.pages is None:
            raise ApiError(404, "Not Found")
        return json_response(self._pages_json(found))

    def _update_pages(self, owner: str, repo: str) -> Response:
        found = self._find(owner, repo)
        if found.pages is None:
            raise ApiError(404, "Not Found")
        body = request.get_json()
        source = body.get("source")
        if isinstance(source, dict):
            found.pages["source"] = {"branch": source["branch"], "path": source.get("path", "/")}
        if body.get("build_type") in ("legacy", "workflow"):
            found.pages["build_type"] = body["build_type"]
        return Response(status=204)

    def _pages_json(self, repo: FakeRepo) -> JsonDict:
        latest = repo.builds[-1].status if repo.builds else "building"
        return {"url": f"{self.api_url}/repos/{repo.full_name}/pages", "status": latest, "cname": None,
                "custom_404": False, "html_url": f"{self.url}/pages/{repo.full_name}/",
                "build_type": (repo.pages or {}).get("build_type", "legacy"),
                "source": repo.pages["source"] if repo.pages else None, "public": True, "https_enforced": False}

    def _start_build(self, repo: FakeRepo, sha: str) -> Build:
        script = self.build_scripts.pop(0) if self.build_scripts else list(self.default_build_script)
        build = Build(len(repo.builds) + 1, sha, script)
        repo.builds.append(build)
        self._observe(repo, build)
        return build

    def _observe(self, repo: FakeRepo, build: Build) -> None:
        """Deploy a build's commit once it reports ``built``."""
        if build.status == "built":
            repo.live_commit = build.commit

    def _request_build(self, owner: str, repo: str) -> Response:
        found = self._find(owner, repo)
        if found.pages is None:
            raise ApiError(404, "Not Found")
        head = found.head(found.pages["source"]["branch"])
        build = self._start_build(found, head or "")
        return json_response({"url": self._build_url(found, build), "status": "queued"}, 201)

    def _latest_build(self, owner: str, repo: str) -> Response:
        found = self._find(owner, repo)
        if not found.builds:
            raise ApiError(404, "Not Found")
        build = found.builds[-1]
        self._observe(found, build)
        body = {"url": self._build_url(found, build), "status": build.status, "commit": build.commit,
                "error": {"message": "Page build failed." if build.status == "errored" else None},
                "pusher": self._user(found.owner), "duration": 1000, "created_at": build.created_at,
                "updated_at": _now_iso()}
        build.polls += 1
        self._observe(found, build)
        return json_response(body)

    def _build_url(self, repo: FakeRepo, build: Build) -> str:
        return f"{self.api_url}/repos/{repo.full_name}/pages/builds/{build.number}"

    def _site(self, owner: str, repo: str, path: str) -> Response:
        """A Pages site: what the last Pages-deploying workflow run published (build type ``workflow``), or the
        files of the commit the last legacy build deployed, through Jekyll (without ``.nojekyll``, paths with a
        segment starting with ``_`` are not served)."""
        found = self.repos.get(f"{owner}/{repo}")
        if found is None or found.pages is None or found.live_commit is None:
            return Response("Not Found", 404)
        if found.pages.get("build_type") == "workflow":
            files = found.deployed or {}
        else:
            files = found.files(found.live_commit)
            if ".nojekyll" not in files:
                files = {p: d for p, d in files.items() if not any(s.startswith("_") for s in p.split("/"))}
        wanted = path + "index.html" if path == "" or path.endswith("/") else path
        if wanted not in files:
            return Response("Not Found", 404)
        media_type = mimetypes.guess_type(wanted)[0] or "application/octet-stream"
        return Response(files[wanted], 200, mimetype=media_type)


class _SpecRequest(WerkzeugOpenAPIRequest):
    """A request as the description sees it: GitHub's host, the raw path without the API prefix."""

    @property
    def host_url(self) -> str:
        return SPEC_HOST

    @property
    def path(self) -> str:
        return _raw_path(request.environ).removeprefix(API_PREFIX)


def _raw_path(environ: JsonDict) -> str:
    """The request path as sent (percent-encoding kept), without the query."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    return raw.split("?", 1)[0]


def _template() -> str | None:
    """GitHub's path template for the matched API route (Flask rules use the same names)."""
    if request.url_rule is None or not request.url_rule.rule.startswith(API_PREFIX):
        return None
    rule = request.url_rule.rule.removeprefix(API_PREFIX)
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def _alternatives(schema: JsonDict) -> list[JsonDict]:
    return schema.get("oneOf") or schema.get("anyOf") or []


def _error_body(status: int, message: str | None) -> JsonDict:
    """An error body in GitHub's shape."""
    return {"message": message or "Server Error", "documentation_url": DOCS, "status": str(status)}


def secondary_rate_limit(retry_after: int = 3) -> Fail:
    """A 403 secondary rate limit with ``Retry-After``, as GitHub sends it."""
    return Fail(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                retry_after=retry_after)


def primary_rate_limit(reset_in: int = 2) -> Fail:
    """A 403 primary rate limit with ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset`` (from now)."""
    headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": str(int(time.time()) + reset_in)}
    return Fail(403, "API rate limit exceeded for user ID 1.", headers=headers)


def _decode(content: str, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.b64decode(content)
    if encoding in ("utf-8", "utf8"):
        return content.encode()
    raise ApiError(422, f"encoding {encoding!r} is not supported")


def _identity(person: JsonDict) -> bytes:
    return f"{person['name']} <{person['email']}>".encode()


def _when(person: JsonDict) -> tuple[int, int]:
    """(epoch seconds, offset seconds) of a commit identity's ISO 8601 ``date`` (default: now, UTC)."""
    if not person.get("date"):
        return int(time.time()), 0
    moment = datetime.fromisoformat(person["date"].replace("Z", "+00:00"))
    offset = moment.utcoffset()
    return int(moment.timestamp()), int(offset.total_seconds()) if offset else 0


def _person(identity: bytes, when: int, _offset: int) -> JsonDict:
    name, _, email = identity.decode().partition(" <")
    date = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"name": name, "email": email.rstrip(">"), "date": date}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
