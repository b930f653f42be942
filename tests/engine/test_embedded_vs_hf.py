"""Greedy output of the embedded model, batched, is token-identical to transformers (float32)."""
from inference_engine import SamplingParams
from utils.oracle import hf_greedy

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a land far away,",
    "Les mathématiques sont",
    "日本の首都は",
    "Emoji test: 🎉🚀 means",
    "1, 2, 3, 4, 5,",
    "Q: What is the boiling point of water?\nA:",
]


def long_prompt(tokenizer, target_tokens: int = 1000) -> str:
    sentence = "The history of science is the study of how people came to understand nature. "
    text = sentence * (target_tokens // len(tokenizer.encode(sentence)) + 1)
    return tokenizer.decode(tokenizer.encode(text)[:target_tokens])


def test_batch_is_token_identical_to_transformers(llm, hf_model):
    tokenizer = llm.get_tokenizer()
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Name three colors."}],
                                         tokenize=False, add_generation_prompt=True)
    prompts = PROMPTS + [long_prompt(tokenizer), chat]
    params = SamplingParams(temperature=0, max_tokens=24)
    outputs = llm.generate(prompts, params, use_tqdm=False)
    assert len(outputs) == len(prompts)
    for prompt, out in zip(prompts, outputs):
        expected = hf_greedy(hf_model, out.prompt_token_ids, 24, tokenizer.eos_token_id)
        assert out.outputs[0].token_ids == expected, prompt[:40]
        assert out.outputs[0].text == tokenizer.decode(
            expected[:-1] if expected[-1] == tokenizer.eos_token_id else expected,
            skip_special_tokens=True)


def test_chat_answers_paris(llm):
    out = llm.chat([{"role": "user", "content": "What is the capital of France?"}],
                   SamplingParams(temperature=0, max_tokens=32), use_tqdm=False)
    assert "Paris" in out[0].outputs[0].text
    assert out[0].outputs[0].finish_reason in ("stop", "length")
