"""A server run with --scheduling-policy priority takes each request's `priority` (vLLM's extra
field; lower first) and answers as the default server does."""
import openai
import pytest

from utils.server import SERVER_ARGS, ServerThread

GREEDY = {"temperature": 0.0, "max_tokens": 8}


@pytest.fixture(scope="module")
def priority_client():
    with ServerThread(SERVER_ARGS + ["--scheduling-policy", "priority"]) as running:
        yield openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0,
                            timeout=120)


def test_priority_requests_answer_as_the_default_server(client, model, priority_client):
    plain = client.completions.create(model=model, prompt="The printing press", **GREEDY)
    for priority in (-3, 0, 7):
        got = priority_client.completions.create(model=model, prompt="The printing press",
                                                 extra_body={"priority": priority}, **GREEDY)
        assert got.choices[0].text == plain.choices[0].text
    chat = priority_client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], extra_body={"priority": 2},
        **GREEDY)
    assert chat.choices[0].message.content


def test_an_unknown_policy_is_refused_by_the_command_line(capsys):
    from inference_engine.entrypoints.openai.cli_args import make_arg_parser
    with pytest.raises(SystemExit):
        make_arg_parser().parse_args(["--scheduling-policy", "shortest"])
    assert "invalid choice: 'shortest'" in capsys.readouterr().err
