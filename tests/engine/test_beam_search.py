"""Beam search (LLM.beam_search, vLLM's) on the embedded model against the same search run on
transformers' float32 log-probabilities: the same beams in the same order, with their scores;
an end token ends a beam; prefix caching changes nothing but the work; every block freed."""
import pytest
import torch

from inference_engine import LLM, BeamSearchParams

PROMPTS = ["The capital of France is", "def fibonacci(n):",
           "Here is a short story about a dragon who learned to bake bread in a small village "
           "by the sea. Once upon a time,"]  # over a block: its beams share cached blocks


def hf_beam_search(model, prompt_ids, width, max_tokens, eos, length_penalty=1.0):
    """Beam search written plainly over transformers' log-probabilities of the last position:
    the 2 x width best continuations of every beam, the width best extensions kept."""
    beams, done = [(list(prompt_ids), 0.0)], []
    for _ in range(max_tokens):
        extended = []
        for tokens, score in beams:
            with torch.no_grad():
                logits = model(torch.tensor([tokens])).logits[0, -1].float()
            top = torch.log_softmax(logits, -1).topk(2 * width)
            for lp, token in zip(top.values.tolist(), top.indices.tolist()):
                target = done if token == eos else extended
                target.append((tokens + [token], score + lp))
        beams = sorted(extended, key=lambda b: b[1], reverse=True)[:width]

    def rank(beam):
        tokens, score = beam
        return score / ((len(tokens) - (tokens[-1] == eos)) ** length_penalty)
    return sorted(done + beams, key=rank, reverse=True)[:width]


@pytest.fixture(scope="module")
def cached_llm(embedded_path):
    llm = LLM(dtype="float32", max_model_len=1024, cpu_kv_cache_space_gib=0.5,
              enable_prefix_caching=True)
    yield llm
    llm.shutdown()


@pytest.mark.parametrize("width,length_penalty", [(1, 1.0), (3, 1.0), (4, 0.5)])
def test_beams_match_a_search_over_transformers(cached_llm, hf_model, width, length_penalty):
    params = BeamSearchParams(beam_width=width, max_tokens=6, length_penalty=length_penalty)
    outputs = cached_llm.beam_search(PROMPTS, params)
    tokenizer = cached_llm.get_tokenizer()
    eos = cached_llm.llm_engine.eos_token_id
    for prompt, out in zip(PROMPTS, outputs):
        expected = hf_beam_search(hf_model, tokenizer.encode(prompt), width, 6, eos,
                                  length_penalty)
        assert [s.tokens for s in out.sequences] == [tokens for tokens, _ in expected]
        for seq, (_, score) in zip(out.sequences, expected):
            assert seq.cum_logprob == pytest.approx(score, abs=1e-3)
            assert seq.text == tokenizer.decode(seq.tokens)
            assert seq.finish_reason == ("stop" if seq.tokens[-1] == eos else "length")
            assert len(seq.logprobs) == len(seq.tokens) - len(tokenizer.encode(prompt))
    blocks = cached_llm.llm_engine.scheduler.block_manager
    assert blocks.prefix_cache_hits > 0  # each step computed only the beams' new tokens
    assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks


def test_without_prefix_caching_and_with_token_ids(llm, cached_llm):
    params = BeamSearchParams(beam_width=2, max_tokens=5)
    prompt = {"prompt_token_ids": cached_llm.get_tokenizer().encode(PROMPTS[0])}
    ours = llm.beam_search(prompt, params)[0].sequences
    assert [s.tokens for s in ours] == [s.tokens for s in
                                        cached_llm.beam_search(PROMPTS[0], params)[0].sequences]


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="beam_width"):
        BeamSearchParams(beam_width=0, max_tokens=4)
    with pytest.raises(ValueError, match="max_tokens"):
        BeamSearchParams(beam_width=2, max_tokens=0)
