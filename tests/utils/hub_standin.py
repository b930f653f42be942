"""A local stand-in for the Hugging Face hub: the endpoints huggingface_hub calls to download a
snapshot, over plain HTTP on 127.0.0.1, serving repositories held in memory. Tests point
huggingface_hub at it (HF_ENDPOINT in a child process; `constants.ENDPOINT` in this one).

    GET  /api/models/{repo}/revision/{rev}    the commit's sha and files
    GET  /api/models/{repo}/tree/{rev}[/path]  the files with sizes and blob ids (one page)
    HEAD /{repo}/resolve/{rev}/{path}          X-Repo-Commit, ETag, Content-Length
    GET  /{repo}/resolve/{rev}/{path}          the file

Errors as the hub answers them: 404 with X-Error-Code RepoNotFound, RevisionNotFound or
EntryNotFound; 401 with GatedRepo for a gated repository asked without its token."""
import hashlib
import json
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files
    gated: bool = False

    def resolve(self, revision: str) -> str | None:
        return revision if revision in self.commits else self.refs.get(revision)


class StandInHub:
    """`add` repositories, `start`, then download from `url`; `requests` counts the file GETs."""

    def __init__(self, token: str = "hf_standin_token"):
        self.repos: dict[str, Repo] = {}
        self.token = token
        self.requests: Counter = Counter()  # "repo/path" -> file downloads
        self._server: ThreadingHTTPServer | None = None

    def add(self, repo_id: str, files: dict[str, bytes], revision: str = "main",
            gated: bool = False) -> str:
        """A commit of `files` on branch or tag `revision`; returns its sha."""
        repo = self.repos.setdefault(repo_id, Repo())
        repo.gated = repo.gated or gated
        sha = hashlib.sha1(repr(sorted((p, git_blob_id(d)) for p, d in files.items()))
                           .encode() + revision.encode()).hexdigest()
        repo.commits[sha], repo.refs[revision] = dict(files), sha
        return sha

    def add_folder(self, repo_id: str, folder: str, **kwargs) -> str:
        files = {}
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, folder)] = f.read()
        return self.add(repo_id, files, **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "StandInHub":
        hub = self

        class Handler(_Handler):
            pass
        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(BaseHTTPRequestHandler):
    hub: StandInHub
    API = re.compile(r"^/api/models/(?P<repo>.+?)/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?P<path>/.*)?$")
    RESOLVE = re.compile(r"^/(?P<repo>.+?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if m := self.API.match(path):
            found = self._commit(m["repo"], m["rev"])
            if found is not None:
                sha, files = found
                if m["kind"] == "revision":
                    self._json({"id": m["repo"], "modelId": m["repo"], "sha": sha,
                                "private": False, "gated": False,
                                "siblings": [{"rfilename": p} for p in sorted(files)]})
                else:
                    self._json([{"type": "file", "oid": git_blob_id(d), "size": len(d), "path": p}
                                for p, d in sorted(files.items())])
        elif m := self.RESOLVE.match(path):
            found = self._commit(m["repo"], m["rev"])
            if found is not None:
                sha, files = found
                data = files.get(m["path"])
                if data is None:
                    return self._error(404, "EntryNotFound")
                if not head:
                    self.hub.requests[f"{m['repo']}/{m['path']}"] += 1
                self.send_response(200)
                self.send_header("X-Repo-Commit", sha)
                self.send_header("ETag", f'"{git_blob_id(data)}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if not head:
                    self.wfile.write(data)
        else:
            self._error(404, "RepoNotFound")

    def _commit(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """The commit `revision` names, or None with the error answered."""
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound")  # (the hub's answer to an unknown repository)
            return None
        if repo.gated and self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            self._error(401, "GatedRepo")
            return None
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound")
            return None
        return sha, repo.commits[sha]

    def _json(self, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str) -> None:
        data = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
