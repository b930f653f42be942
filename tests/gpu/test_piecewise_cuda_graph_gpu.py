"""Piecewise CUDA graphs on a GPU: steps that carry prompts replay the model's pieces with
eager attention between them, and must give the tokens and log-probabilities of the same
steps run eagerly."""
import pytest
import torch

from inference_engine import SamplingParams
from inference_engine.worker.piecewise_cuda_graph import borrowed, can_borrow
from utils.gpu_engine import float32_engine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

PROMPTS = [[(29 * i + 11 * j) % 30000 + 5 for j in range(3 + 13 * i % 70)] for i in range(48)]
# Outputs of different lengths, so that prompts keep joining steps that also decode.
PARAMS = [SamplingParams(temperature=0, max_tokens=8 + 7 * i % 40, ignore_eos=True, logprobs=1)
          for i in range(len(PROMPTS))]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.int64, torch.int8])
def test_borrowed_view_shares_memory_without_owning_it(dtype):
    base = torch.arange(600, device="cuda").to(dtype).view(20, 30)
    view = base[3:17, 5:25]  # strided, with an offset
    b = borrowed(view)
    assert (b.dtype, b.shape, b.stride(), b.data_ptr()) == (view.dtype, view.shape, view.stride(),
                                                            view.data_ptr())
    base.fill_(7)
    assert (b == 7).all()
    assert can_borrow(base.device)  # so the model runner keeps the pieces on


def generate(path: str, piecewise_max_tokens: int) -> tuple[list, dict]:
    """Outputs, and how many steps went through the pieces (and of those, how many mixed
    prompts with decodes)."""
    with float32_engine(path, max_num_seqs=16, max_num_batched_tokens=384, max_model_len=384,
                        piecewise_graph_max_tokens=piecewise_max_tokens) as llm:
        runner = llm.llm_engine.executor.driver.model_runner.piecewise_runner
        steps = {"piecewise": 0, "mixed": 0}
        if runner is not None:
            run = runner.run

            def counting_run(input_ids, positions, meta):
                steps["piecewise"] += 1
                steps["mixed"] += 0 < meta.num_prefill_tokens < input_ids.shape[0]
                return run(input_ids, positions, meta)
            runner.run = counting_run
        outs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS, use_tqdm=False)
        return [out.outputs[0] for out in outs], steps


def test_steps_with_prompts_give_the_eager_tokens(tiny_gpu_checkpoint):
    graphs, steps = generate(tiny_gpu_checkpoint, 256)
    eager, no_steps = generate(tiny_gpu_checkpoint, 0)
    assert steps["piecewise"] > 0 and steps["mixed"] > 0 and no_steps["piecewise"] == 0
    for g, e in zip(graphs, eager, strict=True):
        assert g.token_ids == e.token_ids
        assert g.cumulative_logprob == pytest.approx(e.cumulative_logprob, rel=1e-4, abs=1e-4)
