"""LLM.chat renders with the tools and the template arguments given, as the server does."""
from inference_engine import SamplingParams


def test_offline_chat_takes_tools_and_template_kwargs(llm):
    template = ("{% for t in tools or [] %}TOOL {{ t.function.name }}\n{% endfor %}{{ greeting }}"
                "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:")
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    params = SamplingParams(temperature=0.0, max_tokens=1)
    plain, with_tools = (llm.chat([{"role": "user", "content": "Hi"}], params, use_tqdm=False,
                                  chat_template=template, tools=tools,
                                  chat_template_kwargs={"greeting": "Hello. "})
                         for tools in (None, [tool]))
    tokenizer = llm.get_tokenizer()
    assert tokenizer.decode(plain[0].prompt_token_ids) == "Hello. user: Hi\nassistant:"
    assert tokenizer.decode(with_tools[0].prompt_token_ids).startswith("TOOL lookup\nHello.")
