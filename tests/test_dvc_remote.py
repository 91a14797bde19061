"""A real network remote: DVC pushes to and pulls from an HTTP server on 127.0.0.1 (a fresh clone gets the data
back), and `make pull` (caibase.dvc_pull) stops with a clear message when the remote is missing or refuses."""

import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from caibase import dvc_pull

DVC = str(Path(sys.executable).parent / "dvc")
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "DVC_NO_ANALYTICS": "1"}

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")


def make_handler(root: Path, refuse: bool = False):
    """A minimal HTTP object store over `root`: GET/HEAD read files, PUT/POST write them (what DVC's HTTP remote
    needs); with `refuse`, every request gets 403."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

        def _path(self) -> Path:
            path = (root / self.path.split("?", 1)[0].lstrip("/")).resolve()
            if root.resolve() not in (path, *path.parents):
                raise PermissionError(self.path)
            return path

        def _refused(self) -> bool:
            if refuse:
                self.send_error(403, "Forbidden")
            return refuse

        def _read(self, head_only: bool) -> None:
            if self._refused():
                return
            path = self._path()
            if path.is_dir():
                path = path / "index.html"
                if not path.is_file():  # the remote's root: present, nothing to list
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if not head_only:
                self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._read(head_only=False)

        def do_HEAD(self):  # noqa: N802
            self._read(head_only=True)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _write(self) -> None:
            if self._refused():
                return
            body = self._body()
            path = self._path()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = _write  # noqa: N815
        do_POST = _write  # noqa: N815

    return Handler


@pytest.fixture
def http_remote(tmp_path):
    """(url, served directory, server factory): an HTTP object store on 127.0.0.1, on a free port."""
    servers = []

    def serve(root: Path, refuse: bool = False) -> str:
        root.mkdir(parents=True, exist_ok=True)
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(root, refuse))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def run(cmd, cwd, ok=True):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=GIT_ENV, timeout=120, check=False)
    if ok:
        assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"
    return result


def new_repo(path: Path) -> Path:
    path.mkdir()
    run(["git", "init", "-q", "-b", "main"], path)
    run([DVC, "init", "-q"], path)
    return path


def test_push_and_pull_through_an_http_remote(tmp_path, http_remote):
    """`dvc push` a tracked file and directory to an HTTP remote on 127.0.0.1, `git clone`, `dvc pull`: the clone
    gets the same bytes back, through the network, with no shared cache."""
    url = http_remote(tmp_path / "served") + "/dvc-store"
    origin = new_repo(tmp_path / "origin")
    (origin / "adapter").mkdir()
    (origin / "adapter" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (origin / "adapter" / "config.json").write_text('{"r": 16}\n')
    (origin / "responses.jsonl").write_text('{"id": 1, "response": "I cannot help with that."}\n')
    run([DVC, "add", "-q", "adapter", "responses.jsonl"], origin)
    run([DVC, "remote", "add", "-d", "web", url], origin)
    run([DVC, "remote", "modify", "web", "method", "PUT"], origin)
    assert dvc_pull.check_remote(origin) == ("web", url)
    run([DVC, "push", "-q"], origin)
    assert any((tmp_path / "served" / "dvc-store").rglob("*")), "nothing reached the HTTP server"
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-q", "-m", "tracked outputs"], origin)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / "adapter").exists()
    run([DVC, "pull", "-q"], clone)
    assert (clone / "adapter" / "weights.bin").read_bytes() == (origin / "adapter" / "weights.bin").read_bytes()
    assert (clone / "adapter" / "config.json").read_text() == '{"r": 16}\n'
    assert (clone / "responses.jsonl").read_text() == (origin / "responses.jsonl").read_text()
    assert run([DVC, "status", "-q"], clone).returncode == 0


def _pull_message(repo: Path, capsys) -> str:
    assert dvc_pull.main(["--repo", str(repo), "--configfile", "config/config.yaml"]) == 1
    return capsys.readouterr().err


def test_pull_names_a_missing_local_remote(tmp_path, capsys):
    repo = new_repo(tmp_path / "repo")
    run([DVC, "remote", "add", "-d", "localdir", "../caibase-dvc-remote"], repo)
    err = _pull_message(repo, capsys)
    missing = (tmp_path / "caibase-dvc-remote").resolve()
    assert "'localdir'" in err and str(missing) in err and "does not exist" in err
    assert "make verify" in err and "dvc remote add -d" in err and "make run" in err
    assert "Checkout failed" not in err


def test_pull_names_an_unreachable_or_refusing_http_remote(tmp_path, capsys, http_remote):
    repo = new_repo(tmp_path / "repo")
    refusing = http_remote(tmp_path / "refusing", refuse=True) + "/store"
    run([DVC, "remote", "add", "-d", "web", refusing], repo)
    err = _pull_message(repo, capsys)
    assert refusing in err and "refuses access (HTTP 403" in err and "make verify" in err

    with __import__("socket").socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/store"
    run([DVC, "remote", "modify", "web", "url", closed], repo)
    err = _pull_message(repo, capsys)
    assert closed in err and "cannot be reached" in err


def test_pull_without_any_remote(tmp_path, capsys):
    err = _pull_message(new_repo(tmp_path / "repo"), capsys)
    assert "no DVC remote is configured" in err and "make verify" in err


def test_pull_rebuilds_the_model_and_the_instruct_reference_and_checks_their_sha256(tmp_path):
    """The weights of both prepared models (model/, reference_model/) are rebuilt from their source and checked
    against the committed model_info.json; a different sha256 stops the pull, naming the model's config key."""
    import yaml

    from caibase.models import prepare_model

    config = {"run_name": "r", "model": {"source": "tiny", "kind": "base"},
              "evaluation": {"instruct_reference": {"source": "tiny", "kind": "instruct", "init_seed": 1}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    for folder, entry in (("model", config["model"]), ("reference_model", config["evaluation"]["instruct_reference"])):
        prepare_model(entry, tmp_path / "results" / "r" / folder)
        shutil.rmtree(tmp_path / "results" / "r" / folder / "weights")  # as after a pull: only model_info.json
    assert "model weights" in dvc_pull.rebuild_model(tmp_path, "c.yaml")
    assert (tmp_path / "results/r/reference_model/weights").is_dir() and (tmp_path / "results/r/model/weights").is_dir()
    assert dvc_pull.rebuild_model(tmp_path, "c.yaml") is None  # nothing missing

    shutil.rmtree(tmp_path / "results" / "r" / "reference_model" / "weights")
    config["evaluation"]["instruct_reference"]["init_seed"] = 2  # other weights than recorded
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(dvc_pull.PullError, match="evaluation.instruct_reference.*not the .* recorded"):
        dvc_pull.rebuild_model(tmp_path, "c.yaml")
