"""Tokenizers for checkpoint folders, GGUF files and presets, loaded from local files only.

Converting a GGUF vocabulary with `AutoTokenizer.from_pretrained(..., gguf_file=...)` takes
several seconds, so the converted tokenizer is saved once into the cache folder and loaded from
there afterwards (a few tenths of a second). The cache key is a hash of the file's tokenizer
metadata as stored (plus its architecture and the transformers version), so an edited file
misses the cache, while copies of a file, or test files that carry the same vocabulary, share
one entry.
"""
import logging
import os
import shutil
import tempfile

import transformers
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from inference_engine.transformers_utils.config import (PRESETS, check_model_path, is_gguf,
                                                     needs_trust_remote_code)
from inference_engine.transformers_utils.embedded import (cache_dir, embedded_model_path,
                                                          model_or_default)
from inference_engine.transformers_utils.gguf_reader import GGUFFile

logger = logging.getLogger(__name__)


def get_tokenizer(model: str | None, tokenizer: str | None = None,
                  trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer of `tokenizer` if given, else of `model` (None: the embedded model).

    A preset has no tokenizer of its own: the embedded model's is returned, with a warning.
    """
    source = tokenizer or model_or_default(model)
    if source in PRESETS:
        logger.warning("preset %r has no tokenizer; using the embedded model's (vocabulary of "
                       "49152 tokens) instead", source)
        source = embedded_model_path()
    check_model_path(source)
    if is_gguf(source):
        return gguf_tokenizer(source)
    with needs_trust_remote_code(source):
        return AutoTokenizer.from_pretrained(source, local_files_only=True,
                                             trust_remote_code=trust_remote_code)


def gguf_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer (with chat template) stored in a GGUF file, converted once and cached."""
    key = f"{GGUFFile(path).digest('tokenizer.')[:24]}-{transformers.__version__}"
    try:
        cached = cache_dir("tokenizers") / key
    except OSError as exc:  # no writable cache: convert every time rather than fail
        logger.warning("no tokenizer cache (%s); converting %s", exc, path)
        cached = None
    if cached is not None and cached.is_dir():
        try:
            return AutoTokenizer.from_pretrained(cached, local_files_only=True)
        except Exception as exc:  # a damaged cache entry must not stop the server: rebuild it
            logger.warning("cached tokenizer %s is unreadable (%s); converting again", cached, exc)
            shutil.rmtree(cached, ignore_errors=True)
    folder, name = os.path.split(os.path.abspath(path))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    if cached is not None:
        _save_atomically(tok, cached)
    return tok


def _save_atomically(tok: PreTrainedTokenizerBase, target) -> None:
    """Save into a temporary sibling folder and rename it, so that processes converting the same
    file at once never see a half-written cache entry."""
    tmp = None
    try:
        tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared
        tok.save_pretrained(tmp)
        os.rename(tmp, target)
    except OSError as exc:  # another process got there first, or the cache is read-only
        logger.debug("tokenizer cache not written: %s", exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
