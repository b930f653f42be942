"""A checkpoint whose generation_config.json sets sampling values: requests that leave them unset
get them (vLLM's `--generation-config auto`), requests that set them keep their own, and
`--generation-config vllm` ignores the file."""
import openai
import pytest

from utils.hf_checkpoint import embedded_hf_checkpoint, linked_checkpoint_with
from utils.server import SERVER_ARGS, ServerThread

ASK = [{"role": "user", "content": "Name three colours."}]
NO_EOS = {"ignore_eos": True}


@pytest.fixture(scope="module")
def greedy_checkpoint(tmp_path_factory) -> str:
    """The embedded model's folder (linked) with a generation config: top_k 1 makes sampling
    greedy, and answers stop at 7 tokens unless max_tokens says otherwise."""
    return linked_checkpoint_with(tmp_path_factory.mktemp("generation-config"),
                                  embedded_hf_checkpoint(), {"generation_config.json": {
                                      "do_sample": True, "top_k": 1, "max_new_tokens": 7}})


def serve(checkpoint: str, *extra: str):
    return ServerThread(SERVER_ARGS + ["--model", checkpoint, *extra])


def client_of(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_unset_fields_take_the_models_generation_config(greedy_checkpoint):
    with serve(greedy_checkpoint) as server:
        client = client_of(server)
        model = client.models.list().data[0].id
        answers = [client.chat.completions.create(model=model, messages=ASK, seed=seed,
                                                  extra_body=NO_EOS) for seed in (1, 2)]
        greedy = client.chat.completions.create(model=model, messages=ASK, temperature=0,
                                                max_tokens=7, extra_body=NO_EOS)
        assert all(a.usage.completion_tokens == 7 for a in answers)  # max_new_tokens
        assert {a.choices[0].message.content for a in answers} == {
            greedy.choices[0].message.content}  # top_k 1: every seed samples the greedy answer
        longer = client.chat.completions.create(model=model, messages=ASK, max_tokens=12,
                                                extra_body=NO_EOS)
        assert longer.usage.completion_tokens == 12  # the request's own max_tokens wins
        own = {client.completions.create(model=model, prompt="Colours:", max_tokens=12, seed=s,
                                         extra_body={"top_k": 50, **NO_EOS}).choices[0].text
               for s in range(4)}
        assert len(own) > 1  # the request's own top_k wins: sampled answers differ


def test_vllm_generation_config_ignores_the_file(greedy_checkpoint):
    with serve(greedy_checkpoint, "--generation-config", "vllm",
               "--override-generation-config", '{"max_new_tokens": 5}') as server:
        client = client_of(server)
        model = client.models.list().data[0].id
        answers = {client.chat.completions.create(model=model, messages=ASK, seed=seed,
                                                  extra_body=NO_EOS).choices[0].message.content
                   for seed in range(4)}
        assert len(answers) > 1  # no top_k 1: OpenAI's defaults sample
        reply = client.chat.completions.create(model=model, messages=ASK, extra_body=NO_EOS)
        assert reply.usage.completion_tokens == 5  # the override still applies
