"""The token-mask op of structured outputs against a plain loop and against xgrammar's own
apply_token_bitmask_inplace, over dtypes and vocabulary sizes (not all multiples of 32); masks
filled for many rows at once against one by one."""
import tempfile

import pytest
import torch

from inference_engine.sample.bitmask import apply_token_bitmask, fill_bitmasks
from utils.byte_tokenizer import write_byte_tokenizer

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def reference(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    out = logits.clone()
    for i in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if not (int(bitmask[i, t // 32]) >> (t % 32)) & 1:
                out[i, t] = float("-inf")
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows,vocab", [(1, 32), (3, 100), (5, 257)])
def test_masked_logits_match_a_plain_loop(device, dtype, rows, vocab):
    gen = torch.Generator().manual_seed(rows * vocab)
    logits = torch.randn(rows, vocab, generator=gen).to(dtype)
    words = -(-vocab // 32)
    bitmask = torch.randint(-2**31, 2**31, (rows, words), generator=gen, dtype=torch.int64)
    bitmask = bitmask.to(torch.int32)
    expected = reference(logits, bitmask)
    got = apply_token_bitmask(logits.to(device), bitmask.to(device)).cpu()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_matches_xgrammar_apply_token_bitmask_inplace():
    xgr = pytest.importorskip("xgrammar")
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1000, generator=gen)
    bitmask = torch.randint(-2**31, 2**31, (4, 32), generator=gen, dtype=torch.int64).int()
    expected = logits.clone()
    xgr.apply_token_bitmask_inplace(expected, bitmask)
    torch.testing.assert_close(apply_token_bitmask(logits, bitmask), expected, rtol=0, atol=0)


def test_rows_filled_together_match_rows_filled_one_by_one():
    xgr = pytest.importorskip("xgrammar")
    from transformers import AutoTokenizer
    with tempfile.TemporaryDirectory() as path:
        write_byte_tokenizer(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=300))
    grammars = [compiler.compile_regex(r"[a-c]+x"), compiler.compile_builtin_json_grammar(),
                compiler.compile_grammar('root ::= "yes" | "no"')]
    matchers = [xgr.GrammarMatcher(grammars[i % 3]) for i in range(7)]
    for i, matcher in enumerate(matchers):  # each a few tokens into its grammar
        for token in tokenizer.encode(["ab", '{"k', "y"][i % 3])[: i % 3 + 1]:
            assert matcher.accept_token(token)
    together = fill_bitmasks(matchers, 300)
    for i, matcher in enumerate(matchers):
        assert torch.equal(together[i:i + 1], fill_bitmasks([matcher], 300))
    assert not torch.equal(together[0], together[1])
