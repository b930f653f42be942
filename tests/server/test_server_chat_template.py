"""--chat-template (vLLM's): a template file, or the Jinja text itself, renders every chat
request that gives none (a request's own chat_template still wins); a path that is no file
and no template, or a broken template, is a usage error."""
import httpx
import pytest

from utils.server import SERVER_ARGS, ServerThread

TEMPLATE = ("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


@pytest.fixture(scope="module")
def template_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "chat.jinja"
    path.write_text(TEMPLATE)
    with ServerThread(SERVER_ARGS + ["--chat-template", str(path)]) as server:
        yield server


def rendered(url: str, **extra) -> str:
    ids = httpx.post(url + "/tokenize", json={"messages": MESSAGES, **extra}).json()["tokens"]
    return httpx.post(url + "/detokenize", json={"tokens": ids}).json()["prompt"]


def test_the_template_renders_requests_without_one(template_server, server):
    assert rendered(template_server.url) == "[system] Be brief.\n[user] Hi there\n[assistant] "
    assert rendered(server.url) != rendered(template_server.url)  # the tokenizer's own there
    own = "{% for m in messages %}{{ m.content }}|{% endfor %}"
    assert rendered(template_server.url, chat_template=own) == "Be brief.|Hi there|"
    reply = httpx.post(template_server.url + "/v1/chat/completions", timeout=60,
                       json={"messages": MESSAGES, "max_tokens": 4, "temperature": 0})
    assert reply.status_code == 200
    assert reply.json()["usage"]["prompt_tokens"] == len(httpx.post(
        template_server.url + "/tokenize", json={"messages": MESSAGES}).json()["tokens"])


@pytest.mark.parametrize("value,message", [("/no/such/template.jinja", "nor a Jinja template"),
                                           ("{% for m in messages %}", "not a valid Jinja")])
def test_bad_templates_are_usage_errors(value, message, capsys):
    with pytest.raises(SystemExit):
        ServerThread(SERVER_ARGS + ["--chat-template", value])
    assert message in capsys.readouterr().err
