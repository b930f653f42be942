"""Beam search over the engine (vLLM's `LLM.beam_search`): each step asks every live beam for
one token with its 2 x beam_width most likely continuations, and keeps the beam_width best
extensions per prompt. Beams are plain requests, so with prefix caching on
(`enable_prefix_caching=True`) a step computes only each beam's new token; without it, each
step computes every beam's whole sequence again."""
from dataclasses import dataclass, field

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


def beam_search(llm, prompts: list[list[int]], params: BeamSearchParams, lora_request=None
                ) -> list[BeamSearchOutput]:
    """Beam search for each prompt (token ids) on `llm` (an LLM)."""
    from inference_engine.sampling_params import SamplingParams
    engine = llm.llm_engine
    eos, width = engine.eos_token_id, params.beam_width
    max_model_len = engine.config.model_config.max_model_len
    step = SamplingParams(max_tokens=1, logprobs=2 * width, temperature=params.temperature,
                          ignore_eos=True, detokenize=False)
    beams = [[BeamSearchSequence(list(p))] for p in prompts]
    done: list[list[BeamSearchSequence]] = [[] for _ in prompts]
    for _ in range(params.max_tokens):
        live = [(i, b) for i, group in enumerate(beams) for b in group
                if len(b.tokens) < max_model_len]
        if not live:
            break
        outputs = llm.generate([{"prompt_token_ids": b.tokens} for _, b in live], step,
                               use_tqdm=False, lora_request=lora_request)
        extended: list[list[BeamSearchSequence]] = [[] for _ in prompts]
        for (i, beam), out in zip(live, outputs):
            going, ended = next_beams(beam, out.outputs[0].logprobs[0], eos, params.ignore_eos)
            extended[i] += going
            done[i] += ended
        beams = [sorted(group, key=lambda b: b.cum_logprob, reverse=True)[:width]
                 for group in extended]
    results = []
    for group, ended in zip(beams, done):
        for beam in group:
            beam.finish_reason = "length"
        best = sorted(ended + group, key=lambda b: beam_score(b, eos, params.length_penalty),
                      reverse=True)[:width]
        if engine.tokenizer is not None:
            for beam in best:
                beam.text = engine.tokenizer.decode(beam.tokens)
        results.append(BeamSearchOutput(best))
    return results
