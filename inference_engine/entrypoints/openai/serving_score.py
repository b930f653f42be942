"""POST /score and /rerank (vLLM's, for embedding models): how alike two texts are, as the cosine
similarity of their embeddings (the normalized vectors' dot product).

- `/score` (also `/v1/score`): `text_1` against `text_2`, one text or a list each: one against
  many, or pairwise for two lists of one length.
- `/rerank` (also `/v1/rerank`, `/v2/rerank`; Jina's and Cohere's shape): `documents` ordered by
  their score against `query`, the best `top_n` of them.

Each distinct text is embedded once.
"""
import time
import uuid

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from inference_engine.entrypoints.openai.base import OpenAIBaseModel, OpenAIRequest
from inference_engine.entrypoints.openai.protocol import UsageInfo
from inference_engine.entrypoints.openai.serving_embedding import OpenAIServingEmbedding
from inference_engine.entrypoints.openai.errors import OpenAIError
from inference_engine.pooling_params import PoolingParams
from inference_engine.scoring import ScoreInputError, cosine, score_pairs


class ScoreRequest(OpenAIRequest):
    model: str | None = None
    text_1: str | list[str]
    text_2: str | list[str]
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)
    priority: int = 0


class ScoreData(OpenAIBaseModel):
    index: int
    object: str = "score"
    score: float


class ScoreResponse(OpenAIBaseModel):
    id: str
    object: str = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[ScoreData]
    usage: UsageInfo


class RerankRequest(OpenAIRequest):
    model: str | None = None
    query: str
    documents: list[str]
    top_n: int | None = Field(default=None, ge=0)  # None or 0: all of them
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)
    priority: int = 0


class RerankDocument(OpenAIBaseModel):
    text: str


class RerankResult(OpenAIBaseModel):
    index: int
    document: RerankDocument
    relevance_score: float


class RerankUsage(OpenAIBaseModel):
    total_tokens: int


class RerankResponse(OpenAIBaseModel):
    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]


class OpenAIServingScore(OpenAIServingEmbedding):
    async def create_score(self, request: ScoreRequest, raw_request: Request) -> Response:
        try:
            pairs = score_pairs(request.text_1, request.text_2)
        except ScoreInputError as exc:
            raise OpenAIError(400, str(exc), param=exc.param) from exc
        scores = await self._similarities(request, raw_request, pairs)
        if scores is None:
            return Response(status_code=499)
        similarities, tokens = scores
        response = ScoreResponse(
            id=f"score-{uuid.uuid4().hex}", model=self.response_model(request.model),
            data=[ScoreData(index=i, score=s) for i, s in enumerate(similarities)],
            usage=UsageInfo(prompt_tokens=tokens, total_tokens=tokens))
        return JSONResponse(response.model_dump())

    async def create_rerank(self, request: RerankRequest, raw_request: Request) -> Response:
        if not request.documents:
            raise OpenAIError(400, "documents must not be empty", param="documents")
        pairs = [(request.query, document) for document in request.documents]
        scores = await self._similarities(request, raw_request, pairs)
        if scores is None:
            return Response(status_code=499)
        similarities, tokens = scores
        ranked = sorted(range(len(similarities)), key=lambda i: -similarities[i])
        results = [RerankResult(index=i, document=RerankDocument(text=request.documents[i]),
                                relevance_score=similarities[i])
                   for i in ranked[:request.top_n or None]]
        response = RerankResponse(id=f"rerank-{uuid.uuid4().hex}",
                                  model=self.response_model(request.model),
                                  usage=RerankUsage(total_tokens=tokens), results=results)
        return JSONResponse(response.model_dump())

    async def _similarities(self, request, raw_request: Request,
                            pairs: list[tuple[str, str]]) -> tuple[list[float], int] | None:
        """Each pair's cosine similarity, and the tokens embedded; None if the client left."""
        lora = self.check_model(request.model)
        self.check_engine()
        texts = list(dict.fromkeys(text for pair in pairs for text in pair))
        prompts = [(await self.prompts_of(text, "input", request.truncate_prompt_tokens))[0]
                   for text in texts]
        embeddings = await self.embed(f"score-{raw_request.state.request_id}", prompts,
                                      PoolingParams(), request.priority, lora, raw_request)
        if embeddings is None:
            return None
        of = dict(zip(texts, embeddings))
        scores = [cosine(of[a], of[b]) for a, b in pairs]
        return scores, sum(len(ids) for _, ids in prompts)
