"""greedy_sample (one pass: argmax and its log-probability) against argmax + log_softmax."""
import math

import pytest
import torch

from inference_engine.ops import _compiled
from inference_engine.ops.sampling import greedy_sample_ref
from op_testing import DEVICES, DTYPES, require_compiled

# (rows, vocab): tiny, odd (scalar path), Llama-2's and Llama-3's vocabularies.
SHAPES = [(1, 1), (3, 7), (5, 1000), (2, 32003), (17, 32000), (4, 128256)]


def check(logits: torch.Tensor) -> None:
    tokens, logprobs = _compiled.greedy_sample(logits)
    ref_tokens, ref_logprobs = greedy_sample_ref(logits)
    assert tokens.dtype == torch.int64 and logprobs.dtype == torch.float32
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logprobs, ref_logprobs, atol=2e-5, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_greedy_sample(device, dtype, shape):
    require_compiled("greedy_sample", device)
    check((torch.randn(shape, device=device) * 4).to(dtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_take_the_first_largest_logit(device, dtype):
    require_compiled("greedy_sample", device)
    logits = (torch.randn(6, 50000, device=device)).to(dtype)
    for row, places in enumerate([(3, 40000), (49999, 7), (1024, 1025, 2048), (0, 49999)]):
        logits[row, list(places)] = 100.0
    logits[4] = 1.5  # all equal: token 0, log-probability -log(vocab)
    check(logits)
    tokens, logprobs = _compiled.greedy_sample(logits)
    assert tokens[:5].tolist() == [3, 7, 1024, 0, 0]
    assert logprobs[4].item() == pytest.approx(-math.log(50000), abs=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_masked_logits(device):
    require_compiled("greedy_sample", device)
    logits = torch.randn(4, 4096, device=device)
    logits[0, ::2] = float("-inf")
    logits[1, :4095] = float("-inf")  # one token left: log-probability 0
    logits[2] = float("-inf")         # nothing left: token 0, NaN as log_softmax gives
    check(logits)
    tokens, logprobs = _compiled.greedy_sample(logits)
    assert tokens[1].item() == 4095 and logprobs[1].item() == 0.0
    assert tokens[2].item() == 0 and math.isnan(logprobs[2].item())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_and_misaligned_rows(device, dtype):
    require_compiled("greedy_sample", device)
    wide = (torch.randn(9, 32013, device=device) * 3).to(dtype)
    check(wide[:, :32000])       # rows 32013 apart
    check(wide[1:, 5:32005])     # data not 16-byte aligned
    check(wide[::2, :4096])      # every other row
    transposed = (torch.randn(300, 5, device=device)).to(dtype).t()
    check(transposed)            # columns not contiguous: copied first


@pytest.mark.parametrize("device", DEVICES)
def test_no_rows(device):
    require_compiled("greedy_sample", device)
    tokens, logprobs = _compiled.greedy_sample(torch.empty(0, 100, device=device))
    assert tokens.shape == (0,) and logprobs.shape == (0,)


def test_bad_arguments_are_refused():
    require_compiled("greedy_sample", "cpu")
    logits = torch.randn(3, 10)
    with pytest.raises(RuntimeError, match="tokens must be contiguous int64"):
        torch.ops.inference_engine.greedy_sample(torch.empty(3, dtype=torch.int32),
                                                 torch.empty(3), logits)
    with pytest.raises(RuntimeError, match="logprobs must be contiguous float32"):
        torch.ops.inference_engine.greedy_sample(torch.empty(3, dtype=torch.int64),
                                                 torch.empty(2), logits)
    with pytest.raises(RuntimeError, match="logits must be"):
        torch.ops.inference_engine.greedy_sample(torch.empty(3, dtype=torch.int64),
                                                 torch.empty(3), torch.randn(3, 10, 2))
