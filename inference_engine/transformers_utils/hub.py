"""Models named by a Hugging Face hub id (`org/name`): the files the engine needs are downloaded
through huggingface_hub into its cache (or `download_dir`), or found there, and the engine then
reads the local snapshot folder like any checkpoint folder.

What is fetched: configs, tokenizer files, the generation config and chat templates, and the
weights: safetensors (with their index) where the repository has them, else `pytorch_model*.bin`.
huggingface_hub honours HF_TOKEN and HF_HUB_OFFLINE, and HF_ENDPOINT (read here at each call);
several processes asking for one snapshot share its lock files, so it is downloaded once.
"""
import fnmatch
import os
import re

from inference_engine.transformers_utils.config import PRESETS

# A hub id: a name, or an owner and a name, of letters, digits and `-_.` (huggingface_hub's
# own rule; no `..`, no leading or trailing `-.`).
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^(?:{_NAME}/)?{_NAME}$")
SIDE_FILES = ["*.json", "*.jinja", "*.model", "*.txt", "*.tiktoken", "tokenizer*"]
SAFETENSORS = ["*.safetensors"]
PYTORCH_BIN = ["pytorch_model*.bin"]


def local_model(name: str, revision: str | None = None, gguf_file: str | None = None,
                download_dir: str | None = None, token: str | None = None, weights: bool = True,
                code: bool = False) -> str:
    """The local path of what the user named: a folder or file as it is (with `gguf_file`, that
    file of the folder), a hub id's snapshot folder, or a GGUF repository's one file
    (`org/name:QUANT`, or `gguf_file`), downloaded if the cache lacks them."""
    tagged = gguf_hub_id(name)
    if tagged is not None or (gguf_file is not None and is_hub_id(name)):
        repo_id, quant = tagged or (name, None)
        return download_gguf(repo_id, quant, gguf_file, revision, download_dir, token)
    if gguf_file is not None:
        return os.path.join(name, gguf_file)
    if is_hub_id(name):
        return download_model(name, revision, download_dir, token, weights, code)
    return name


def gguf_hub_id(name: str) -> tuple[str, str] | None:
    """`org/name:QUANT` (vLLM's form: one GGUF file of a repository of several) as
    (repo id, quantization); None for any other name."""
    repo_id, _, quant = name.rpartition(":")
    if repo_id and re.fullmatch(r"[A-Za-z0-9_.-]+", quant) and is_hub_id(repo_id):
        return repo_id, quant
    return None


def download_gguf(repo_id: str, quant: str | None = None, filename: str | None = None,
                  revision: str | None = None, download_dir: str | None = None,
                  token: str | None = None) -> str:
    """The local path of one GGUF file of `repo_id`: `filename`, or the one whose name holds
    `quant` (`Q4_K_M`, any case), downloaded if the cache lacks it."""
    if filename is not None:
        patterns = [filename]
    else:
        patterns = sorted({f"*{q}*.gguf" for q in (quant, quant.upper(), quant.lower())})
    folder = _download(repo_id, revision, download_dir, token, patterns)
    # (The snapshot's folder also holds the files fetched for other patterns before.)
    names = (os.path.relpath(os.path.join(root, f), folder)
             for root, _, found in os.walk(folder) for f in found)
    files = sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))
    wanted = filename or f"*{quant}*.gguf file"
    if not files:
        raise FileNotFoundError(f"{repo_id} has no {wanted}")
    if len(files) > 1:
        raise ValueError(f"{repo_id} has several GGUF files matching {quant!r}: {files}; "
                         "name one with --gguf-file")
    return os.path.join(folder, files[0])


def is_hub_id(name: str) -> bool:
    """True for a name that is no local path, no preset and reads as a hub id."""
    return (not os.path.exists(name) and name not in PRESETS and ".." not in name
            and not name.endswith(".gguf") and _HUB_ID.match(name) is not None)


def download_model(repo_id: str, revision: str | None = None, download_dir: str | None = None,
                   token: str | None = None, weights: bool = True, code: bool = False) -> str:
    """The local folder of `repo_id` at `revision` (a branch, tag or commit; None: main) with
    the files the engine reads (`weights`: the weights too; `code`: the repository's Python
    files, for --trust-remote-code), downloaded if the cache lacks them. Raises
    FileNotFoundError or PermissionError saying what failed."""
    folder = _download(repo_id, revision, download_dir, token,
                       SIDE_FILES + (SAFETENSORS if weights else []) + (["*.py"] if code else []))
    if not weights:
        return folder
    if not _has(folder, ".safetensors"):  # an older checkpoint: PyTorch's pickles
        folder = _download(repo_id, revision, download_dir, token, PYTORCH_BIN)
    if not (_has(folder, ".safetensors") or _has(folder, ".bin")):
        where = repo_id + (f" at revision {revision!r}" if revision else "")
        raise FileNotFoundError(f"{where} has no weights this engine reads (*.safetensors or "
                                "pytorch_model*.bin)")
    return folder


def _download(repo_id: str, revision: str | None, download_dir: str | None, token: str | None,
              patterns: list[str]) -> str:
    """snapshot_download of the files matching `patterns`, its errors told plainly."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    where = repo_id + (f" at revision {revision!r}" if revision else "")
    try:
        # HF_ENDPOINT as it is now (huggingface_hub reads it once, when imported).
        return snapshot_download(repo_id, revision=revision, cache_dir=download_dir,
                                 token=token, allow_patterns=patterns,
                                 endpoint=os.environ.get("HF_ENDPOINT") or None)
    except GatedRepoError as exc:  # (before RepositoryNotFoundError: it is one)
        raise PermissionError(f"{where} is gated: accept its terms on the hub and pass a token "
                              "that may read it (HF_TOKEN or --hf-token)") from exc
    except RepositoryNotFoundError as exc:
        raise FileNotFoundError(f"no model {repo_id!r} on the hub (nor a local path of that "
                                "name); a private repository needs a token (HF_TOKEN or "
                                "--hf-token)") from exc
    except RevisionNotFoundError as exc:
        raise FileNotFoundError(f"{repo_id} has no revision {revision!r}") from exc
    except LocalEntryNotFoundError as exc:
        raise FileNotFoundError(f"{where} is not in the local cache and the hub cannot be "
                                "reached (or HF_HUB_OFFLINE is set)") from exc


def _has(folder: str, suffix: str) -> bool:
    return any(name.endswith(suffix) for name in os.listdir(folder))
