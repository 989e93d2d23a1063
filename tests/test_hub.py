"""The weights registry: local lookup, and downloads with the real `huggingface_hub` client from a
local HTTP server on 127.0.0.1 that answers the way the Hugging Face Hub does (``HF_ENDPOINT``)."""

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.weights_io import save_weights, sha256_file

REPO = Path(__file__).resolve().parent.parent
SHIPPED = hub.PACKAGE_WEIGHTS_DIR / hub.REGISTRY["smtnet-300w-small"].filename
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Files by ``(repo_id, revision, filename)``, served like the Hub serves LFS files: HEAD/GET on
    ``/{repo}/resolve/{rev}/{file}`` answer 302 to a second origin (the CDN) with ``X-Repo-Commit``,
    ``X-Linked-Etag`` and ``X-Linked-Size``; a missing file is a 404 with ``X-Error-Code: EntryNotFound``."""

    def __init__(self):
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.requests: list[str] = []
        hub_handler, cdn_handler = self._handlers()
        self.hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), hub_handler)
        self.cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cdn_handler)
        self.endpoint = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.hub, self.cdn)]
        for t in self.threads:
            t.start()

    def _handlers(self):
        fake = self

        class Quiet(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

        class Hub(Quiet):
            def do_HEAD(self):
                self._resolve(send_body=False)

            def do_GET(self):
                self._resolve(send_body=True)

            def _resolve(self, send_body):
                fake.requests.append(f"hub {self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                key = ("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
                data = fake.files.get(key)
                self.send_response(302 if data is not None else 404)
                self.send_header("X-Repo-Commit", COMMIT)
                if data is None:
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Error-Message", "Entry not found")
                else:
                    digest = hashlib.sha256(data).hexdigest()
                    self.send_header("ETag", '"pointer-etag"')
                    self.send_header("X-Linked-Etag", f'"{digest}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                    self.send_header("Location", f"{fake.cdn_url}/blobs/{digest}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Cdn(Quiet):
            def do_GET(self):
                fake.requests.append(f"cdn GET {self.path}")
                digest = self.path.rsplit("/", 1)[-1]
                data = next((d for d in fake.files.values() if hashlib.sha256(d).hexdigest() == digest), None)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{digest}"')
                self.end_headers()
                self.wfile.write(data)

        return Hub, Cdn

    def close(self):
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()


@pytest.fixture
def fake_hub():
    server = FakeHub()
    yield server
    server.close()


def run_client(tmp_path, endpoint, script, offline=False):
    """Run ``script`` in a fresh interpreter (huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at
    import), with its own Hub cache and no bundled weights, so the download path is taken."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_", "FACELANDMARKS_SMT_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    prelude = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from facelandmarks_smt import hub\n"
        f"hub.PACKAGE_WEIGHTS_DIR = Path({str(tmp_path / 'no_package_weights')!r})\n"
        "print('PACKAGE', Path(hub.__file__))\n"
        "def report(**kw): print('RESULT ' + json.dumps(kw))\n"
    )
    r = subprocess.run([sys.executable, "-c", prelude + script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert f"\nPACKAGE {Path(hub.__file__)}\n" in f"\n{r.stdout}", "the client imported another checkout"
    lines = [ln[7:] for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, f"client failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(lines[-1])


RESOLVE_AND_REPORT = """
try:
    path, sha = hub.resolve({name!r})
    report(ok=True, path=str(path), sha=sha)
except Exception as e:
    report(ok=False, type=type(e).__name__, classes=[c.__name__ for c in type(e).__mro__], message=str(e))
"""


def test_download_checks_sha_loads_and_is_cached_for_offline_use(tmp_path, fake_hub):
    """The shipped model's real registry entry, fetched from the fake Hub as if not installed."""
    entry = hub.REGISTRY["smtnet-300w-small"]
    fake_hub.files[(entry.repo_id, entry.revision, entry.filename)] = SHIPPED.read_bytes()
    script = """
from facelandmarks_smt import Detector
assert hub.available() == []
det = Detector.from_pretrained("smtnet-300w-small", device="cpu")
face = det.detect({image!r}, boxes=[[178, 87, 270, 178]])[0]
path, sha = hub.resolve("smtnet-300w-small")
report(path=str(path), sha=sha, available=hub.available(), nose=face.landmarks[30].tolist(),
       eyes_y=float(face.landmarks[36:48, 1].mean()), mouth_y=float(face.landmarks[48:68, 1].mean()),
       score=float(face.scores.mean()))
""".format(image=str(REPO / "examples" / "astronaut.jpg"))
    out = run_client(tmp_path, fake_hub.endpoint, script)
    assert out["sha"] == entry.sha256
    assert Path(out["path"]).is_relative_to(tmp_path / "hf_home")   # in the Hub's own cache
    assert sha256_file(out["path"]) == entry.sha256
    assert out["available"] == ["smtnet-300w-small"]
    assert 178 < out["nose"][0] < 270 and out["eyes_y"] < out["nose"][1] < out["mouth_y"]
    assert out["score"] > 0.2
    assert any(r.startswith("hub HEAD") for r in fake_hub.requests)
    assert sum(r.startswith("cdn GET") for r in fake_hub.requests) == 1

    # Offline afterwards: the cached copy is used, and the server is not asked again.
    before = len(fake_hub.requests)
    out = run_client(tmp_path, fake_hub.endpoint, RESOLVE_AND_REPORT.format(name="smtnet-300w-small"),
                     offline=True)
    assert out["ok"] and out["sha"] == entry.sha256
    assert len(fake_hub.requests) == before


def test_wrong_checksum_is_refused(tmp_path, fake_hub):
    entry = hub.REGISTRY["smtnet-300w-small"]
    fake_hub.files[(entry.repo_id, entry.revision, entry.filename)] = b"not the published weights" * 100
    out = run_client(tmp_path, fake_hub.endpoint, RESOLVE_AND_REPORT.format(name="smtnet-300w-small"))
    assert not out["ok"] and out["type"] == "ValueError"
    assert "smtnet-300w-small" in out["message"] and entry.sha256 in out["message"]
    assert "was not loaded" in out["message"]
    assert any(r.startswith("cdn GET") for r in fake_hub.requests)


def test_missing_file_on_the_hub(tmp_path, fake_hub):
    out = run_client(tmp_path, fake_hub.endpoint, RESOLVE_AND_REPORT.format(name="smtnet-300w-small"))
    assert not out["ok"] and "FileNotFoundError" in out["classes"]
    assert out["type"] == "PretrainedWeightsUnavailable"
    for part in ("smtnet-300w-small", "smtnet-300w-small.safetensors", hub.PLACEHOLDER_HUB_REPO_ID, "Fix:"):
        assert part in out["message"]
    assert "EntryNotFound" in out["message"]
    assert fake_hub.requests and all(r.startswith("hub HEAD") for r in fake_hub.requests)


def test_offline_mode_names_model_file_and_fix(tmp_path, fake_hub):
    entry = hub.REGISTRY["smtnet-300w-small"]
    fake_hub.files[(entry.repo_id, entry.revision, entry.filename)] = SHIPPED.read_bytes()
    out = run_client(tmp_path, fake_hub.endpoint, RESOLVE_AND_REPORT.format(name="smtnet-300w-small"),
                     offline=True)
    assert not out["ok"] and out["type"] == "PretrainedWeightsUnavailable"
    assert "HF_HUB_OFFLINE is set" in out["message"]
    for part in ("'smtnet-300w-small'", "smtnet-300w-small.safetensors", "Fix:", "FACELANDMARKS_SMT_WEIGHTS"):
        assert part in out["message"]
    assert fake_hub.requests == []


def test_no_network_names_model_file_and_fix(tmp_path):
    with socket.socket() as s:          # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # huggingface_hub retries a refused connection 5 times with back-off (about 24 s of sleeping);
    # the client's sleeps are skipped here (and counted), the requests are all made.
    skip_sleeps = ("import huggingface_hub.utils._http as _h\n"
                   "sleeps = []\n"
                   "_h.time.sleep = sleeps.append\n")
    script = skip_sleeps + RESOLVE_AND_REPORT.format(name="smtnet-300w-small").replace(
        "report(ok=False,", "report(sleeps=len(sleeps), ok=False,")
    out = run_client(tmp_path, f"http://127.0.0.1:{port}", script)
    assert not out["ok"] and out["type"] == "PretrainedWeightsUnavailable" and out["sleeps"] >= 1
    assert "could not be reached" in out["message"] and "smtnet-300w-small.safetensors" in out["message"]


def test_misspelt_name_lists_known_names():
    with pytest.raises(ValueError) as e:
        Detector.from_pretrained("smtnet-300w-smal")
    msg = str(e.value)
    assert "unknown pretrained weights name 'smtnet-300w-smal'" in msg
    assert "Did you mean 'smtnet-300w-small'?" in msg and "Known names: smtnet-300w-small" in msg
    assert "No pretrained weights are installed" not in msg


def test_a_missing_path_is_not_a_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        Detector.from_pretrained(tmp_path / "gone.safetensors")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        Detector.from_pretrained(str(tmp_path / "gone.safetensors"))
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        Detector.from_pretrained("runs/small/best")


def test_env_folder_is_searched_and_sha_checked(monkeypatch, tmp_path):
    det = Detector.from_config("tiny", num_landmarks=5, device="cpu")
    digest = save_weights(det.model, det.config, tmp_path / "mine.safetensors")
    monkeypatch.setitem(hub.REGISTRY, "mine", hub.PretrainedWeights("mine", "mine.safetensors", digest, 5, "x"))
    monkeypatch.setenv("FACELANDMARKS_SMT_WEIGHTS", str(tmp_path))
    assert "mine" in hub.available()
    assert Detector.from_pretrained("mine", device="cpu").num_landmarks == 5
    monkeypatch.setitem(hub.REGISTRY, "mine", hub.PretrainedWeights("mine", "mine.safetensors", "f" * 64, 5, "x"))
    with pytest.raises(ValueError, match="sha256"):
        Detector.from_pretrained("mine", device="cpu")


@pytest.mark.parametrize("name", sorted(hub.REGISTRY))
def test_registry_entries_match_package_data_and_model_cards(name):
    entry = hub.REGISTRY[name]
    card = (REPO / "weights" / (Path(entry.filename).stem + ".md")).read_text()
    assert entry.sha256 in card and entry.repo_id and entry.revision
    path = hub.PACKAGE_WEIGHTS_DIR / entry.filename
    if path.is_file():
        assert sha256_file(path) == entry.sha256


def test_the_small_model_ships_inside_the_package():
    assert SHIPPED.is_file() and SHIPPED.parent == Path(hub.__file__).parent / "weights"
    assert "smtnet-300w-small" in hub.available()
    assert hub.resolve("smtnet-300w-small")[0] == SHIPPED


@pytest.mark.skipif(not hub.available(), reason="no pretrained weights installed")
def test_pretrained_landmarks_on_the_astronaut_are_a_face():
    """Real weights on a real face: the 68 points must have a face's layout."""
    det = Detector.from_pretrained(hub.available()[0], device="cpu")
    faces = det.detect(REPO / "examples" / "astronaut.jpg")
    assert len(faces) == 1
    p = faces[0].landmarks
    left_eye, right_eye = p[36:42].mean(0), p[42:48].mean(0)
    nose_tip, mouth, chin = p[30], p[48:68].mean(0), p[8]
    assert left_eye[0] < nose_tip[0] < right_eye[0]           # nose between the eyes (image x)
    assert max(left_eye[1], right_eye[1]) < nose_tip[1] < mouth[1] < chin[1]  # top to bottom
    iod = np.linalg.norm(p[36] - p[45])
    assert 30 < iod < 120                                     # a plausible eye distance in this 512 px photo
    assert faces[0].scores.mean() > 0.2
