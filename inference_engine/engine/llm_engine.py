"""The engine: requests in, one step at a time (schedule -> execute -> process outputs), outputs out.

With async scheduling a step launches the next model run before it processes the previous one
(see engine/step_in_flight.py), so the device never waits for the host.
"""
import itertools
import logging
import time
from collections.abc import Iterable

import torch

from inference_engine.config import EngineConfig
from inference_engine.core.scheduler import Scheduler
from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.engine.idle_memory import release_free_memory
from inference_engine.engine.request_checks import RequestChecks
from inference_engine.engine.step_in_flight import StepInFlight, needs_host_tokens
from inference_engine.engine.step_input import StepInputBuilder, StepRows
from inference_engine.engine.stop_checker import StopChecker
from inference_engine.engine.token_appender import TokenAppender
from inference_engine.engine_request import EngineRequest
from inference_engine.executor import create_executor
from inference_engine.lora.request import LoRARequest
from inference_engine.outputs import OutputCursor, RequestOutput
from inference_engine.pooling_params import PoolingParams
from inference_engine.sample.device_samples import SamplerOutput
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus
from inference_engine.structured_output.manager import StructuredOutputManager

logger = logging.getLogger(__name__)


class LLMEngine:
    """Owns the tokenizer, the scheduler and the executor that runs the model."""

    def __init__(self, config: EngineConfig):
        self.config = config
        mc = config.model_config
        self.tokenizer = None
        if not mc.skip_tokenizer_init:
            from inference_engine.transformers_utils.tokenizer import get_tokenizer
            self.tokenizer = get_tokenizer(mc.model, mc.tokenizer, mc.trust_remote_code)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        self.eos_token_id = eos if eos is not None else getattr(mc.hf_config, "eos_token_id", None)
        if isinstance(self.eos_token_id, list):
            self.eos_token_id = self.eos_token_id[0]
        self.executor = create_executor(config, self.eos_token_id)
        # A checkpoint without an LM head (a bare transformer) serves embeddings only.
        self.embedding_only = getattr(self.executor.driver.model_runner.model,
                                      "embedding_only", False)
        num_blocks = self.executor.determine_num_blocks()
        needed = -(-mc.max_model_len // config.cache_config.block_size)
        if num_blocks < needed:
            raise ValueError(
                f"the KV cache has room for {num_blocks} blocks, but one sequence of max_model_len="
                f"{mc.max_model_len} needs {needed}: raise gpu_memory_utilization / "
                "cpu_kv_cache_space_gib or lower max_model_len")
        config.cache_config.num_blocks = num_blocks
        self.executor.init_cache(num_blocks)
        logger.info("KV cache: %d blocks of %d tokens", num_blocks, config.cache_config.block_size)
        self.scheduler = Scheduler(config.scheduler_config, config.cache_config,
                                   config.lora_config, config.speculative_config)
        self.structured_outputs = StructuredOutputManager(self.tokenizer, mc.hf_config.vocab_size,
                                                          self.eos_token_id)
        self.checks = RequestChecks(config, self.tokenizer, self.structured_outputs)
        self.appender = TokenAppender(StopChecker(mc.max_model_len, self.eos_token_id),
                                      self.structured_outputs, self.tokenizer)
        self.seq_counter = itertools.count()
        self.requests: dict[str, SequenceGroup] = {}
        # Running totals that engine/metrics.py turns into Prometheus counters.
        self.num_prompt_tokens_total = 0
        self.num_generation_tokens_total = 0
        # Speculative decoding: sequence steps with drafts, drafts checked, drafts kept.
        self.num_drafts_total = self.num_draft_tokens_total = self.num_accepted_tokens_total = 0
        self.device = self.executor.driver.device
        self.async_scheduling = config.async_scheduling
        self.step_inputs = StepInputBuilder(config.cache_config.block_size,
                                            config.lora_config is not None,
                                            config.async_scheduling)
        self.in_flight: StepInFlight | None = None  # launched, not yet processed

    @classmethod
    def from_engine_args(cls, args: EngineArgs) -> "LLMEngine":
        return cls(args.create_engine_config())

    def check_request(self, request: EngineRequest) -> None:
        """Checks the request against this engine and prepares it (tokenizes its prompt and bad
        words, compiles its structured-output constraint: engine/request_checks.py); raises
        InvalidRequestError (a ValueError). Safe on any thread: a server runs it off its loop."""
        if not isinstance(request.params, PoolingParams) and self.embedding_only:
            raise ValueError("this model has no LM head (an embedding model): it serves "
                             "embeddings only")
        self.checks.check(request)

    def add_request(self, request: EngineRequest) -> None:
        """Queues a request, checked first unless it was (check_request). A LoRA adapter is read
        and checked here on every rank, the first time a request names it."""
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        if not request.checked:
            self.check_request(request)
        pooling = request.params if isinstance(request.params, PoolingParams) else None
        params = request.params
        if pooling is not None:  # the prompt's step samples a token, which is dropped
            params = SamplingParams(temperature=0.0, max_tokens=1, detokenize=False)
        lora_request, cache_salt = request.lora_request, request.cache_salt
        if lora_request is not None:
            self.add_lora(lora_request)
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        prompt_token_ids = request.prompt_token_ids
        seq = self._new_seq(prompt_token_ids, params, 0)
        if request.grammar is not None:
            self.structured_outputs.start(seq, params, request.grammar)
        group = SequenceGroup(request.request_id, request.prompt, prompt_token_ids, params, seq,
                              request.arrival_time, generator, request.priority)
        group.pooling_params = pooling
        group.lora_request = lora_request
        if lora_request is not None or cache_salt is not None:
            seq.cache_salt = (group.lora_int_id.to_bytes(8, "little")
                              + (cache_salt or "").encode())
        if pooling is not None:
            group.pooling_type = self.config.model_config.pooling_type
        group.output_cursor = OutputCursor(group, request.output_kind)
        self.requests[request.request_id] = group
        self.scheduler.add_seq_group(group)

    def add_lora(self, request: LoRARequest) -> None:
        """Reads and checks a LoRA adapter on every rank (a LoRAError, a ValueError, if it
        can't be served); requests naming it run with it."""
        if self.config.lora_config is None:
            raise ValueError("a LoRA adapter was asked for, but LoRA is not enabled "
                             "(enable_lora=True, --enable-lora)")
        self.executor.add_lora(request)

    def remove_lora(self, lora_id: int) -> None:
        """Forgets adapter `lora_id` on every rank; its running requests read it again."""
        if self.config.lora_config is not None:
            self.executor.remove_lora(lora_id)

    def _new_seq(self, prompt_token_ids: list[int], params: SamplingParams, index: int) -> Sequence:
        seq = Sequence(next(self.seq_counter), prompt_token_ids, index)
        if params.detokenize and self.tokenizer is not None:
            from inference_engine.engine.detokenizer import IncrementalDetokenizer
            seq.detokenizer = IncrementalDetokenizer(
                self.tokenizer, prompt_token_ids, skip_special_tokens=params.skip_special_tokens,
                spaces_between_special_tokens=params.spaces_between_special_tokens,
                stop=params.stop, include_stop_str_in_output=params.include_stop_str_in_output)
        return seq

    def abort_request(self, request_id: str | Iterable[str]) -> None:
        ids = [request_id] if isinstance(request_id, str) else list(request_id)
        for rid in ids:
            if self.scheduler.abort_seq_group(rid) is not None:
                self.requests.pop(rid, None)

    def reset_prefix_cache(self) -> None:
        """Forgets every cached prompt prefix (with --enable-prefix-caching)."""
        self.scheduler.block_manager.reset_prefix_cache()

    def release_idle_memory(self) -> None:
        """With no request in the engine: frees the host memory a burst left (engine/
        idle_memory.py), the KV cache's too unless cached prefixes still hold blocks."""
        release_free_memory()
        blocks = self.scheduler.block_manager
        if (not self.has_unfinished_requests()
                and blocks.get_num_free_blocks() == self.config.cache_config.num_blocks
                and not blocks.num_cached_blocks):
            self.executor.release_kv_memory()

    def check_health(self) -> None:
        """Raises if a worker rank is gone."""
        self.executor.check_health()

    def shutdown(self) -> None:
        """Stops the worker ranks (tensor parallelism); safe to call twice."""
        self.executor.shutdown()

    def has_unfinished_requests(self) -> bool:
        return self.in_flight is not None or self.scheduler.has_unfinished_seqs()

    def get_num_unfinished_requests(self) -> int:
        return self.scheduler.get_num_unfinished_seq_groups()

    def get_num_waiting_requests(self, num_new: int = 0) -> int:
        """Of the requests in the engine and `num_new` more, those beyond the max_num_seqs that
        a step runs: those that would wait for others to finish."""
        num_open = self.scheduler.get_num_unfinished_seq_groups() + num_new
        return max(0, num_open - self.config.scheduler_config.max_num_seqs)

    def unscheduled_request_ids(self, arrived_before: float) -> list[str]:
        """The waiting requests that arrived before `arrived_before` (time.time()) and were
        never scheduled: those a queue timeout gives up."""
        return [g.request_id for g in self.scheduler.waiting
                if g.metrics.first_scheduled_time is None
                and g.metrics.arrival_time < arrived_before]

    def step(self) -> list[RequestOutput]:
        """Runs one scheduling step and returns the outputs due of the requests whose new tokens
        it processed, each in its request's output kind: the whole state (CUMULATIVE), what is
        new (DELTA), or only once finished (FINAL_ONLY: nothing is built for the others).

        With async scheduling those tokens are the previous step's: this one is launched first
        and left in flight. It drains the previous step before scheduling instead when the next
        tokens cannot be sampled without it; with nothing left to schedule it just drains."""
        outputs = []
        if self.in_flight is not None and needs_host_tokens(self.in_flight.sched):
            outputs += self._process_step(self.in_flight)
            self.in_flight = None
        sched = self.scheduler.schedule()
        outputs += [self._finish(g) for g in sched.ignored_seq_groups]
        previous, launched = self.in_flight, None
        if not sched.is_empty():
            model_input, meta, rows = self.step_inputs.build(sched)
            launched = StepInFlight(sched, rows, self.executor.execute_model(model_input, meta))
        self.in_flight = None
        if launched is not None and self.async_scheduling:
            launched.count_pending(1)
            self.in_flight, launched = launched, None  # the next step processes it
        for step in (previous, launched):
            if step is not None:
                outputs += self._process_step(step)
        return [output for output in outputs if output is not None]

    def _process_step(self, step: StepInFlight) -> list[RequestOutput | None]:
        """Reads a launched step's tokens (waiting for the device), appends them and returns
        the outputs of its requests."""
        result = step.samples.read()
        if self.async_scheduling:
            step.count_pending(-1)
        sched = step.sched
        self._process_model_outputs(step.rows, result)
        self.num_prompt_tokens_total += sched.num_prefill_tokens
        self.num_drafts_total += len(sched.spec_tokens)
        self.num_draft_tokens_total += sum(map(len, sched.spec_tokens.values()))
        self.scheduler.free_finished_seq_groups()
        outputs = []
        sampled = {id(group) for group, _ in step.rows.seqs}
        for group in sched.scheduled_seq_groups:
            if self.requests.get(group.request_id) is not group:
                continue  # aborted, or finished by the step before (then this one ran it too far)
            if group.is_finished:
                outputs.append(self._finish(group))
            elif id(group) in sampled:  # (not a chunk of its prefill: nothing new to tell)
                outputs.append(group.output_cursor.next())
        return outputs

    def _finish(self, group: SequenceGroup) -> RequestOutput | None:
        """A finished request's last output; its metrics get its counts."""
        final = RequestOutput.from_seq_group(group)
        metrics = group.metrics
        metrics.finished_time = time.time()
        metrics.num_output_tokens = [len(c.token_ids) for c in final.outputs]
        metrics.finish_reason = ("stop" if group.pooling_params is not None  # done once computed
                                 else final.outputs[0].finish_reason if final.outputs else None)
        self.requests.pop(group.request_id, None)
        return group.output_cursor.next(final)

    def _process_model_outputs(self, rows: StepRows, result: SamplerOutput) -> None:
        now = time.time()
        for group, logprobs in zip(rows.prompt_groups, result.prompt_logprobs):
            group.prompt_logprobs = [None] + [self.appender.decode_logprobs(d) for d in logprobs]
        drafts_ended = set()  # sequences that got their last token of the step
        for i, (row, (group, seq), samples) in enumerate(zip(result.meta.rows, rows.seqs,
                                                                result.samples)):
            if self.async_scheduling and seq.is_finished:
                continue  # aborted, or past a stop found in the step before: dropped
            if row.draft is not None:  # a position of speculative decoding, in order
                if seq.seq_id in drafts_ended or seq.is_finished:
                    continue  # after a draft that failed (or a stop): never computed right
                if samples[0].token_id == row.draft:
                    self.num_accepted_tokens_total += 1
                else:  # the draft failed (or none was left): this token is the step's last
                    drafts_ended.add(seq.seq_id)
            if group.metrics.first_token_time is None:
                group.metrics.first_token_time = now
            group.metrics.last_token_time = now
            if group.pooling_params is not None:  # its embedding; the sampled token is dropped
                group.embedding = result.embeddings[i]
                seq.status = SequenceStatus.FINISHED_STOPPED
                continue
            for i, sample in enumerate(samples[1:], start=1):
                child = seq.fork(next(self.seq_counter), i)
                if seq.detokenizer is not None:
                    child.detokenizer = self._new_seq(group.prompt_token_ids,
                                                      group.sampling_params, i).detokenizer
                self.scheduler.block_manager.fork(seq, child)
                group.seqs.append(child)
                self.appender.append(child, group.sampling_params, sample)
            self.appender.append(seq, group.sampling_params, samples[0])
            self.num_generation_tokens_total += len(samples)
