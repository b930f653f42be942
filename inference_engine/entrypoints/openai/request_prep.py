"""Turning a request's text into what the engine takes (token ids, a rendered chat), off the
event loop and within limits: a text over `max_prompt_bytes` is refused before it is
tokenized, the server's chat template renders on the offload threads, and a request's own
template only with --trust-request-chat-template, in the sandbox."""
import jinja2

from inference_engine.entrypoints.openai.chat_template_sandbox import ChatTemplateSandbox
from inference_engine.entrypoints.openai.errors import OpenAIError
from inference_engine.entrypoints.openai.offload import OffloadPool

# No real prompt averages more bytes per token than this; the default byte limit allows it for
# every token of the context (and never less than 1 MiB, for /tokenize of long documents).
BYTES_PER_TOKEN = 32
MIN_PROMPT_BYTES = 1 << 20

# apply_chat_template's own parameters: not template variables a request may set.
_RESERVED_TEMPLATE_KWARGS = frozenset({
    "conversation", "conversations", "messages", "tools", "documents", "chat_template",
    "add_generation_prompt", "continue_final_message", "tokenize", "return_dict",
    "return_tensors", "padding", "truncation", "max_length", "tokenizer_kwargs",
    "return_assistant_tokens_mask", "sanitize_control_tokens"})


def default_max_prompt_bytes(max_model_len: int) -> int:
    return max(BYTES_PER_TOKEN * max_model_len, MIN_PROMPT_BYTES)


class RequestPrep:
    """The tokenizer's work for the endpoints; `sandbox` is None unless request templates are
    trusted."""

    def __init__(self, tokenizer, pool: OffloadPool, max_prompt_bytes: int,
                 sandbox: ChatTemplateSandbox | None = None):
        self.tokenizer = tokenizer
        self.pool = pool
        self.max_prompt_bytes = max_prompt_bytes
        self.sandbox = sandbox

    def check_size(self, text: str, param: str) -> None:
        """400 for a text over the byte limit (counting its bytes only when it could be)."""
        if len(text) * 4 <= self.max_prompt_bytes:  # UTF-8 takes at most 4 bytes a character
            return
        if len(text) > self.max_prompt_bytes or len(text.encode()) > self.max_prompt_bytes:
            raise OpenAIError(400, f"{param} is over {self.max_prompt_bytes} bytes: the server "
                              "refuses longer prompts before tokenizing them "
                              "(--max-prompt-bytes)", param=param, code="context_length_exceeded")

    async def encode(self, text: str, param: str, add_special_tokens: bool = True) -> list[int]:
        self._need_tokenizer("text prompts need")
        self.check_size(text, param)
        return await self.pool.run(self.tokenizer.encode, text,
                                   add_special_tokens=add_special_tokens)

    async def decode(self, token_ids: list[int]) -> str:
        self._need_tokenizer("detokenizing needs")
        return await self.pool.run(self.tokenizer.decode, token_ids)

    async def run(self, fn, *args, **kwargs):
        """Any other request-dependent work (compiling a grammar, say) on the offload threads."""
        return await self.pool.run(fn, *args, **kwargs)

    async def render_chat(self, conversation: list[dict], request_template: str | None,
                          tools: list[dict] | None, add_generation_prompt: bool,
                          continue_final_message: bool, template_kwargs: dict | None) -> str:
        """The prompt text of a conversation: through the request's own template if it gave
        one, else the server's (--chat-template, or the tokenizer's)."""
        self._need_tokenizer("chat needs")
        template_kwargs = template_kwargs or {}
        reserved = sorted(_RESERVED_TEMPLATE_KWARGS & set(template_kwargs))
        if reserved:
            raise OpenAIError(400, f"chat_template_kwargs may not set {reserved}",
                              param="chat_template_kwargs")
        for message in conversation:
            if isinstance(message.get("content"), str):
                self.check_size(message["content"], "messages")
        if request_template is not None:
            if self.sandbox is None:
                raise OpenAIError(400, "a chat_template in the request needs the server started "
                                  "with --trust-request-chat-template", param="chat_template")
            text = await self.sandbox.render(
                conversations=[conversation], chat_template=request_template, tools=tools,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
                **{**self.tokenizer.special_tokens_map, **template_kwargs})
        else:
            try:
                text = await self.pool.run(
                    self.tokenizer.apply_chat_template, conversation, tokenize=False, tools=tools,
                    add_generation_prompt=add_generation_prompt,
                    continue_final_message=continue_final_message, **template_kwargs)
            except (jinja2.TemplateError, ValueError, TypeError, KeyError) as exc:
                raise OpenAIError(400, f"the chat template could not render the messages: "
                                  f"{exc}", param="messages") from exc
        self.check_size(text, "messages")
        return text

    def _need_tokenizer(self, what_needs: str) -> None:
        if self.tokenizer is None:
            raise OpenAIError(400, f"{what_needs} the tokenizer (skip_tokenizer_init is set)")
