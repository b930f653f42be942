"""Beam search over the engine (vLLM's `LLM.beam_search`): each step asks every live beam for
one token with its 2 x beam_width most likely continuations, and keeps the beam_width best
extensions per prompt. Beams are plain requests, so with prefix caching on
(`enable_prefix_caching=True`) a step computes only each beam's new token; without it, each
step computes every beam's whole sequence again."""
import asyncio
from dataclasses import dataclass, field

from inference_engine.engine_request import EngineRequest
from inference_engine.outputs import CompletionOutput, RequestOutput, RequestOutputKind
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Logprob


@dataclass
class BeamSearchParams:
    """`beam_width` beams a prompt, up to `max_tokens` new tokens each; a beam ends at the end
    of sequence token (unless `ignore_eos`). Beams rank by cumulative log-probability divided
    by their length to the power `length_penalty` (vLLM's score: the length counts the prompt,
    not the end token). `temperature` above 0 adds each beam's sampled token to its
    candidates."""
    beam_width: int
    max_tokens: int
    ignore_eos: bool = False
    temperature: float = 0.0
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, got {self.beam_width}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")


@dataclass
class BeamSearchSequence:
    """A beam: `tokens` (the prompt's, then the generated ones), each generated token's
    candidates with their log-probabilities, and `text`, the whole sequence decoded (vLLM's)."""
    tokens: list[int]
    logprobs: list[dict[int, Logprob]] = field(default_factory=list)
    cum_logprob: float = 0.0
    text: str | None = None
    finish_reason: str | None = None  # "stop" at the end token, else "length"


@dataclass
class BeamSearchOutput:
    sequences: list[BeamSearchSequence]  # the best beam_width beams, best first


def beam_score(beam: BeamSearchSequence, eos_token_id: int | None,
               length_penalty: float) -> float:
    length = len(beam.tokens) - (beam.tokens[-1] == eos_token_id)
    return beam.cum_logprob / (length ** length_penalty)


def next_beams(beam: BeamSearchSequence, candidates: dict[int, Logprob],
               eos_token_id: int | None, ignore_eos: bool
               ) -> tuple[list[BeamSearchSequence], list[BeamSearchSequence]]:
    """The beam's extensions by each candidate token: (those that go on, those that ended)."""
    live, ended = [], []
    for token, lp in candidates.items():
        new = BeamSearchSequence(beam.tokens + [token], beam.logprobs + [candidates],
                                 beam.cum_logprob + lp.logprob)
        if token == eos_token_id and not ignore_eos:
            new.finish_reason = "stop"
            ended.append(new)
        else:
            live.append(new)
    return live, ended


class BeamSearch:
    """One search's state for any number of prompts: `live()` the beams to extend next (each
    with the request its step needs), `advance()` with their candidates, `results()` once no
    beam is live or max_tokens steps were taken."""

    def __init__(self, prompts: list[list[int]], params: BeamSearchParams,
                 eos_token_id: int | None, max_model_len: int):
        self.params, self.eos, self.max_model_len = params, eos_token_id, max_model_len
        self.beams = [[BeamSearchSequence(list(p))] for p in prompts]
        self.ended: list[list[BeamSearchSequence]] = [[] for _ in prompts]
        self.steps = 0
        self._live: list[tuple[int, BeamSearchSequence]] = []

    def step_params(self) -> SamplingParams:
        return SamplingParams(max_tokens=1, logprobs=2 * self.params.beam_width,
                              temperature=self.params.temperature, ignore_eos=True,
                              detokenize=False)

    def live(self) -> list[list[int]]:
        """The token ids of every beam to extend this step (none when the search is over)."""
        self._live = []
        if self.steps < self.params.max_tokens:
            self._live = [(i, b) for i, group in enumerate(self.beams) for b in group
                          if len(b.tokens) < self.max_model_len]
        return [b.tokens for _, b in self._live]

    def advance(self, candidates: list[dict[int, Logprob]]) -> None:
        """Each live beam's candidates (its step's logprobs), in the order of live()."""
        extended: list[list[BeamSearchSequence]] = [[] for _ in self.beams]
        for (i, beam), options in zip(self._live, candidates, strict=True):
            going, ended = next_beams(beam, options, self.eos, self.params.ignore_eos)
            extended[i] += going
            self.ended[i] += ended
        self.beams = [sorted(group, key=lambda b: b.cum_logprob, reverse=True)
                      [:self.params.beam_width] for group in extended]
        self.steps += 1

    def results(self, tokenizer=None) -> list[BeamSearchOutput]:
        out = []
        for group, ended in zip(self.beams, self.ended):
            for beam in group:
                beam.finish_reason = "length"
            best = sorted(ended + group, reverse=True,
                          key=lambda b: beam_score(b, self.eos, self.params.length_penalty))
            best = best[:self.params.beam_width]
            if tokenizer is not None:
                for beam in best:
                    beam.text = tokenizer.decode(beam.tokens)
            out.append(BeamSearchOutput(best))
        return out


def beam_search(llm, prompts: list[list[int]], params: BeamSearchParams, lora_request=None
                ) -> list[BeamSearchOutput]:
    """Beam search for each prompt (token ids) on `llm` (an LLM)."""
    engine = llm.llm_engine
    search = BeamSearch(prompts, params, engine.eos_token_id,
                        engine.config.model_config.max_model_len)
    step = search.step_params()
    while live := search.live():
        outputs = llm.generate([{"prompt_token_ids": t} for t in live], step, use_tqdm=False,
                               lora_request=lora_request)
        search.advance([o.outputs[0].logprobs[0] for o in outputs])
    return search.results(engine.tokenizer)


async def stream_beam_search(client, request_id: str, prompt: str | None, prompt_ids: list[int],
                             params: BeamSearchParams, lora_request=None,
                             logprobs: int | None = None):
    """The server's beam search over `client` (an AsyncLLMEngine): yields one RequestOutput,
    finished, whose completions are the best beams, best first, with only their generated
    tokens and text (vLLM's server); `logprobs` keeps each token's top ones."""
    engine = client.engine
    search = BeamSearch([prompt_ids], params, engine.eos_token_id,
                        engine.config.model_config.max_model_len)
    step = search.step_params()

    async def candidates(tokens: list[int], beam_id: str) -> dict[int, Logprob]:
        async for out in client.generate(EngineRequest(
                beam_id, None, step, tokens, RequestOutputKind.FINAL_ONLY,
                lora_request=lora_request)):
            final = out
        return final.outputs[0].logprobs[0]

    rounds = 0
    while live := search.live():
        search.advance(await asyncio.gather(*[candidates(t, f"{request_id}-beam{rounds}-{k}")
                                              for k, t in enumerate(live)]))
        rounds += 1
    completions = []
    for i, beam in enumerate(search.results()[0].sequences):
        generated = beam.tokens[len(prompt_ids):]
        text = engine.tokenizer.decode(generated, skip_special_tokens=True) if engine.tokenizer \
            else ""
        kept = None
        if logprobs is not None:
            kept = [{t: lp for t, lp in options.items() if t == token or lp.rank <= logprobs}
                    for token, options in zip(generated, beam.logprobs)]
        completions.append(CompletionOutput(i, text, generated, beam.cum_logprob, kept,
                                            beam.finish_reason))
    yield RequestOutput(request_id, prompt, prompt_ids, None, completions, True)
