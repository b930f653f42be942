"""POST /v1/embeddings: each input's embedding, its final hidden states pooled as the model's
pooling type says (LAST, MEAN or CLS) and normalized, as OpenAI's API returns them: floats, or
base64 of little-endian float32."""
import base64
import struct
import time
from typing import Literal

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from inference_engine.engine_request import EngineRequest
from inference_engine.entrypoints.openai.base import OpenAIBaseModel, OpenAIRequest
from inference_engine.entrypoints.openai.protocol import UsageInfo
from inference_engine.entrypoints.openai.response_streams import (collect_final_outputs,
                                                                  merge_async_iterators)
from inference_engine.entrypoints.openai.errors import OpenAIError
from inference_engine.entrypoints.openai.serving_engine import OpenAIServing
from inference_engine.outputs import RequestOutputKind
from inference_engine.pooling_params import PoolingParams


class EmbeddingRequest(OpenAIRequest):
    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    priority: int = 0  # lower first; needs --scheduling-policy priority
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)  # keep the last k


class EmbeddingData(OpenAIBaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(OpenAIBaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: UsageInfo
    created: int = Field(default_factory=lambda: int(time.time()))


class OpenAIServingEmbedding(OpenAIServing):
    async def create_embedding(self, request: EmbeddingRequest, raw_request: Request) -> Response:
        lora = self.check_model(request.model)
        self.check_engine()
        hidden_size = self.engine.config.model_config.hf_config.hidden_size
        if request.dimensions is not None and request.dimensions > hidden_size:
            raise OpenAIError(400, f"dimensions must be at most the model's hidden size "
                              f"{hidden_size}, got {request.dimensions}", param="dimensions")
        prompts = await self.prompts_of(request.input, "input", request.truncate_prompt_tokens)
        embeddings = await self.embed(f"embd-{raw_request.state.request_id}", prompts,
                                      PoolingParams(dimensions=request.dimensions),
                                      request.priority, lora, raw_request)
        if embeddings is None:
            return Response(status_code=499)  # nobody is listening any more
        data = [EmbeddingData(index=i, embedding=_encode(e, request.encoding_format))
                for i, e in enumerate(embeddings)]
        tokens = sum(len(ids) for _, ids in prompts)
        response = EmbeddingResponse(data=data, model=self.response_model(request.model),
                                     usage=UsageInfo(prompt_tokens=tokens, total_tokens=tokens))
        return JSONResponse(response.model_dump())

    async def embed(self, request_id: str, prompts: list[tuple[str | None, list[int]]],
                    params: PoolingParams, priority: int, lora, raw_request: Request
                    ) -> list[list[float]] | None:
        """The prompts' embeddings in order; None if the client went away meanwhile."""
        for _, ids in prompts:
            if len(ids) >= self.max_model_len:  # the engine computes a token past the prompt
                raise OpenAIError(400, f"an input is {len(ids)} tokens; this model's maximum "
                                  f"context length is {self.max_model_len}", param="input",
                                  code="context_length_exceeded")
        self.check_engine(len(prompts), "input")
        outputs = merge_async_iterators(*[
            self.engine.generate(EngineRequest(f"{request_id}-{i}", text, params, ids,
                                               RequestOutputKind.FINAL_ONLY, priority, lora,
                                               prompt_field="input"))
            for i, (text, ids) in enumerate(prompts)])
        final = await collect_final_outputs(outputs, raw_request)
        return None if final is None else [final[i].embedding for i in range(len(prompts))]


def _encode(embedding: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return embedding
    return base64.b64encode(struct.pack(f"<{len(embedding)}f", *embedding)).decode()
