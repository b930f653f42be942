"""POST /tokenize and /detokenize: the served model's tokenizer, and its chat template."""
from inference_engine.entrypoints.openai.protocol_utility import (DetokenizeRequest,
                                                                  DetokenizeResponse,
                                                                  TokenizeRequest,
                                                                  TokenizeResponse)
from inference_engine.entrypoints.openai.serving_chat import OpenAIServingChat
from inference_engine.entrypoints.openai.errors import OpenAIError


class OpenAIServingTokenization(OpenAIServingChat):
    """Tokenizes a prompt or a conversation exactly as the generation endpoints would."""

    async def tokenize(self, request: TokenizeRequest) -> TokenizeResponse:
        self.check_model(request.model)
        if (request.prompt is None) == (request.messages is None):
            raise OpenAIError(400, "give exactly one of prompt and messages", param="prompt")
        if request.messages is not None:
            _, ids = await self.render_chat(request.messages, request.chat_template,
                                            request.add_generation_prompt,
                                            request.continue_final_message)
        else:
            ids = await self.prep.encode(request.prompt, "prompt",
                                         add_special_tokens=request.add_special_tokens)
        return TokenizeResponse(count=len(ids), max_model_len=self.max_model_len, tokens=ids)

    async def detokenize(self, request: DetokenizeRequest) -> DetokenizeResponse:
        self.check_model(request.model)
        if request.tokens:
            self.check_token_ids(request.tokens, "tokens")
        return DetokenizeResponse(prompt=await self.prep.decode(request.tokens))
