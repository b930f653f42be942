"""The offline API, mirroring vLLM's: LLM(...).generate(...) and .chat(...)."""
import itertools
from collections.abc import Sequence

from tqdm import tqdm

from inference_engine.beam_search import BeamSearchOutput, BeamSearchParams, beam_search
from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.engine.llm_engine import LLMEngine
from inference_engine.engine_request import EngineRequest
from inference_engine.lora.request import LoRARequest
from inference_engine.outputs import EmbeddingRequestOutput, RequestOutput, RequestOutputKind
from inference_engine.pooling_params import PoolingParams
from inference_engine.sampling_params import SamplingParams
from inference_engine.scoring import (ScoringOutput, ScoringRequestOutput, cosine,
                                      score_pairs)

PromptType = str | dict  # text, or {"prompt_token_ids": [...]} / {"prompt": "..."}, either
# with "cache_salt": "..." (prefix-cache sharing only with prompts of the same salt)


class LLM:
    """Generates completions for batches of prompts with continuous batching.

    `model=None` loads the embedded SmolLM2-135M-Instruct; otherwise a Hugging Face checkpoint
    folder, a .gguf file, or a preset name with `load_format="dummy"`. Every other keyword is an
    EngineArgs field (dtype, max_model_len, max_num_seqs, ...).
    """

    def __init__(self, model: str | None = None, **kwargs):
        self.llm_engine = LLMEngine.from_engine_args(EngineArgs(model=model, **kwargs))
        self._ids = itertools.count()

    def shutdown(self) -> None:
        """Stops the engine's worker ranks; the LLM cannot generate afterwards."""
        self.llm_engine.shutdown()

    def get_tokenizer(self):
        return self.llm_engine.tokenizer

    def reset_prefix_cache(self) -> None:
        """Forgets every cached prompt prefix (with enable_prefix_caching=True)."""
        self.llm_engine.reset_prefix_cache()

    def get_default_sampling_params(self) -> SamplingParams:
        """What generate uses without sampling params: the checkpoint's generation config
        (EngineArgs.generation_config), else SamplingParams' defaults."""
        return SamplingParams(**self.llm_engine.config.model_config.sampling_defaults)

    def generate(self, prompts: PromptType | Sequence[PromptType] | None = None,
                 sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
                 prompt_token_ids: list[list[int]] | None = None,
                 use_tqdm: bool = True, priority: list[int] | None = None,
                 lora_request: LoRARequest | Sequence[LoRARequest | None] | None = None
                 ) -> list[RequestOutput]:
        """One RequestOutput per prompt, in the order given. `priority` (one per prompt, lower
        first) needs scheduling_policy="priority"; `lora_request` (one for all, or one per
        prompt) needs enable_lora=True."""
        if prompts is None:
            if prompt_token_ids is None:
                raise ValueError("give prompts or prompt_token_ids")
            prompts = [{"prompt_token_ids": ids} for ids in prompt_token_ids]
        elif isinstance(prompts, (str, dict)):
            prompts = [prompts]
        prompts = list(prompts)
        if sampling_params is None:
            sampling_params = self.get_default_sampling_params()
        params = ([sampling_params] * len(prompts)
                  if isinstance(sampling_params, (SamplingParams, PoolingParams))
                  else list(sampling_params))
        if len(params) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling params")
        priority = [0] * len(prompts) if priority is None else list(priority)
        if len(priority) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(priority)} priorities")
        loras = (list(lora_request) if isinstance(lora_request, Sequence)
                 else [lora_request] * len(prompts))
        if len(loras) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(loras)} LoRA requests")
        request_ids = []
        try:
            for prompt, p, prio, lora in zip(prompts, params, priority, loras):
                request_id = str(next(self._ids))
                text, ids = ((prompt, None) if isinstance(prompt, str)
                             else (prompt.get("prompt"), prompt.get("prompt_token_ids")))
                salt = prompt.get("cache_salt") if isinstance(prompt, dict) else None
                self.llm_engine.add_request(EngineRequest(
                    request_id, text, p, ids, RequestOutputKind.FINAL_ONLY, prio, lora, salt))
                request_ids.append(request_id)
        except Exception:
            self.llm_engine.abort_request(request_ids)
            raise
        return self._run_engine(request_ids, use_tqdm)

    def embed(self, prompts: PromptType | Sequence[PromptType] | None = None,
              pooling_params: PoolingParams | None = None,
              prompt_token_ids: list[list[int]] | None = None,
              use_tqdm: bool = True) -> list[EmbeddingRequestOutput]:
        """Each prompt's embedding: its final hidden states pooled by the model's pooling type
        (LAST, MEAN or CLS: EngineArgs.pooling_type), normalized unless pooling_params says
        otherwise, in the order given."""
        outputs = self.generate(prompts, pooling_params or PoolingParams(), prompt_token_ids,
                                use_tqdm)
        return [EmbeddingRequestOutput.from_output(out) for out in outputs]

    def score(self, text_1: str | list[str], text_2: str | list[str],
              use_tqdm: bool = True) -> list[ScoringRequestOutput]:
        """vLLM's scoring for embedding models: the cosine similarity of each pair's
        normalized embeddings, one text_1 against every text_2 or text_1[i] against
        text_2[i]."""
        pairs = score_pairs(text_1, text_2)
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        embedded = dict(zip(texts, self.embed(texts, PoolingParams(), use_tqdm=use_tqdm)))
        return [ScoringRequestOutput(
            str(next(self._ids)), ScoringOutput(cosine(embedded[a].outputs.embedding,
                                                       embedded[b].outputs.embedding)),
            embedded[a].prompt_token_ids + embedded[b].prompt_token_ids) for a, b in pairs]

    def chat(self, messages: list[dict] | list[list[dict]],
             sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
             use_tqdm: bool = True, chat_template: str | None = None,
             add_generation_prompt: bool = True, continue_final_message: bool = False,
             tools: list[dict] | None = None,
             chat_template_kwargs: dict | None = None) -> list[RequestOutput]:
        """Applies the tokenizer's chat template to each conversation (with `tools`, OpenAI's
        function definitions, for templates that describe them), then generates."""
        conversations = [messages] if messages and isinstance(messages[0], dict) else messages
        tokenizer = self.get_tokenizer()
        prompts = [{"prompt_token_ids": list(tokenizer.apply_chat_template(
            conv, chat_template=chat_template, tokenize=True, return_dict=False, tools=tools,
            add_generation_prompt=add_generation_prompt and not continue_final_message,
            continue_final_message=continue_final_message, **(chat_template_kwargs or {})))}
            for conv in conversations]
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

    def beam_search(self, prompts: PromptType | Sequence[PromptType], params: BeamSearchParams,
                    lora_request: LoRARequest | None = None) -> list[BeamSearchOutput]:
        """vLLM's beam search (inference_engine/beam_search.py): the best `params.beam_width`
        beams of each prompt (text, or {"prompt_token_ids": [...]}), best first."""
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        checks = self.llm_engine.checks
        ids = [checks.prompt_ids(p.get("prompt"), p.get("prompt_token_ids"))
               if isinstance(p, dict) else checks.prompt_ids(p, None) for p in prompts]
        return beam_search(self, ids, params, lora_request)

    def _run_engine(self, request_ids: list[str], use_tqdm: bool) -> list[RequestOutput]:
        engine = self.llm_engine
        finished: dict[str, RequestOutput] = {}
        bar = tqdm(total=len(request_ids), desc="Processed prompts", disable=not use_tqdm)
        try:
            while engine.has_unfinished_requests():
                for out in engine.step():  # finished ones only: they are FINAL_ONLY
                    finished[out.request_id] = out
                    bar.update(1)
        except BaseException:
            engine.abort_request(request_ids)
            raise
        finally:
            bar.close()
        return [finished[rid] for rid in request_ids]
