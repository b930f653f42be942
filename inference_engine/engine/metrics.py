"""Engine metrics: Prometheus series (prefix `inference_engine:`) and a periodic log line.

The async engine calls `StatLogger.log` after every pass of its loop. Gauges and token counters
come from the engine's state at that moment; per-request latencies come from
`RequestOutput.metrics` when a request finishes.
"""
import logging
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from inference_engine.config import CacheConfig
from inference_engine.outputs import RequestOutput

logger = logging.getLogger(__name__)

PREFIX = "inference_engine:"

# Bucket bounds in seconds: sub-second steps for the interactive range, then long tails for
# queued or very long requests.
_TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
                 80.0]
_TPOT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0]
_REQUEST_BUCKETS = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0]


def _token_buckets(max_model_len: int) -> list[float]:
    """1, 2, 5, 10, 20, 50, ... up to max_model_len."""
    buckets, scale = [], 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > max_model_len:
                return buckets
            buckets.append(float(mantissa * scale))
        scale *= 10


class Metrics:
    """The Prometheus series of one engine, declared on the registry given (one per app, so
    that several servers in one process don't clash)."""

    def __init__(self, registry: CollectorRegistry, cache_config: CacheConfig,
                 max_model_len: int):
        def gauge(name, doc):
            return Gauge(PREFIX + name, doc, registry=registry)

        def counter(name, doc, labels=()):
            return Counter(PREFIX + name, doc, labels, registry=registry)

        def histogram(name, doc, buckets):
            return Histogram(PREFIX + name, doc, buckets=buckets, registry=registry)

        self.num_requests_running = gauge("num_requests_running", "Requests being decoded.")
        self.num_requests_waiting = gauge("num_requests_waiting", "Requests waiting for a slot.")
        self.kv_cache_usage_perc = gauge("kv_cache_usage_perc",
                                         "Fraction of KV-cache blocks in use (1 = full).")
        self.prompt_tokens = counter("prompt_tokens_total", "Prefilled tokens.")
        self.generation_tokens = counter("generation_tokens_total", "Generated tokens.")
        self.num_preemptions = counter("num_preemptions_total", "Preemptions by recomputation.")
        self.prefix_cache_queries = counter("prefix_cache_queries_total",
                                            "Prompt tokens looked up in the prefix cache.")
        self.prefix_cache_hits = counter("prefix_cache_hits_total",
                                         "Prompt tokens found in the prefix cache (not computed).")
        self.spec_decode_drafts = counter(
            "spec_decode_num_drafts_total", "Speculative decoding: sequence steps with drafts.")
        self.spec_decode_draft_tokens = counter(
            "spec_decode_num_draft_tokens_total", "Speculative decoding: draft tokens checked.")
        self.spec_decode_accepted_tokens = counter(
            "spec_decode_num_accepted_tokens_total", "Speculative decoding: draft tokens kept.")
        self.request_success = counter("request_success_total",
                                       "Finished requests by finish reason.", ["finished_reason"])
        self.time_to_first_token = histogram("time_to_first_token_seconds",
                                             "Arrival to first token.", _TTFT_BUCKETS)
        self.time_per_output_token = histogram("time_per_output_token_seconds",
                                               "Mean time between a request's output tokens.",
                                               _TPOT_BUCKETS)
        self.e2e_request_latency = histogram("e2e_request_latency_seconds",
                                             "Arrival to finish.", _REQUEST_BUCKETS)
        self.request_queue_time = histogram("request_queue_time_seconds",
                                            "Arrival to first scheduled.", _REQUEST_BUCKETS)
        tokens = _token_buckets(max_model_len)
        self.request_prompt_tokens = histogram("request_prompt_tokens",
                                               "Prompt tokens per finished request.", tokens)
        self.request_generation_tokens = histogram(
            "request_generation_tokens", "Generated tokens per finished request (all choices).",
            tokens)
        # vLLM's series: the adapters running and waiting, as labels of a gauge holding the
        # time they were read (set only by an engine that serves LoRA adapters).
        self.lora_requests_info = Gauge(
            PREFIX + "lora_requests_info", "LoRA adapters of the running and waiting requests.",
            ["max_lora", "running_lora_adapters", "waiting_lora_adapters"], registry=registry)
        Info(PREFIX + "cache_config", "KV-cache settings.", registry=registry).info({
            "block_size": str(cache_config.block_size),
            "num_blocks": str(cache_config.num_blocks),
            "gpu_memory_utilization": str(cache_config.gpu_memory_utilization),
            "cpu_kv_cache_space_gib": str(cache_config.cpu_kv_cache_space_gib),
            "watermark": str(cache_config.watermark),
            "cache_dtype": cache_config.cache_dtype,
            "enable_prefix_caching": str(cache_config.enable_prefix_caching),
        })


@dataclass
class Stats:
    """The engine's state after a step; token and preemption figures are running totals."""
    now: float
    num_running: int
    num_waiting: int
    kv_cache_usage: float
    prompt_tokens_total: int
    generation_tokens_total: int
    num_preemptions_total: int
    prefix_cache_queries_total: int = 0
    prefix_cache_hits_total: int = 0
    drafts_total: int = 0
    draft_tokens_total: int = 0
    accepted_tokens_total: int = 0

    @classmethod
    def from_engine(cls, engine) -> "Stats":
        scheduler = engine.scheduler
        blocks = scheduler.block_manager
        return cls(time.time(), len(scheduler.running), len(scheduler.waiting),
                   blocks.usage, engine.num_prompt_tokens_total,
                   engine.num_generation_tokens_total, scheduler.num_preemptions_total,
                   blocks.prefix_cache_queries, blocks.prefix_cache_hits,
                   engine.num_drafts_total, engine.num_draft_tokens_total,
                   engine.num_accepted_tokens_total)


class StatLogger:
    """Updates `Metrics` after every loop pass and logs throughput every `log_interval` s."""

    def __init__(self, metrics: Metrics, log_interval: float = 5.0):
        self.metrics = metrics
        self.log_interval = log_interval
        self._last = Stats(time.time(), 0, 0, 0.0, 0, 0, 0)
        self._last_logged = self._last

    def log(self, engine, outputs: list[RequestOutput], num_aborted: int = 0) -> None:
        m, stats, last = self.metrics, Stats.from_engine(engine), self._last
        m.num_requests_running.set(stats.num_running)
        m.num_requests_waiting.set(stats.num_waiting)
        m.kv_cache_usage_perc.set(stats.kv_cache_usage)
        m.prompt_tokens.inc(stats.prompt_tokens_total - last.prompt_tokens_total)
        m.generation_tokens.inc(stats.generation_tokens_total - last.generation_tokens_total)
        m.num_preemptions.inc(stats.num_preemptions_total - last.num_preemptions_total)
        m.prefix_cache_queries.inc(stats.prefix_cache_queries_total - last.prefix_cache_queries_total)
        m.prefix_cache_hits.inc(stats.prefix_cache_hits_total - last.prefix_cache_hits_total)
        m.spec_decode_drafts.inc(stats.drafts_total - last.drafts_total)
        m.spec_decode_draft_tokens.inc(stats.draft_tokens_total - last.draft_tokens_total)
        m.spec_decode_accepted_tokens.inc(stats.accepted_tokens_total - last.accepted_tokens_total)
        if num_aborted:
            m.request_success.labels(finished_reason="abort").inc(num_aborted)
        if engine.config.lora_config is not None:
            self._set_lora_info(engine, stats.now)
        for output in outputs:
            if output.finished:
                self._observe_finished(output, stats.now)
        self._last = stats
        if stats.now - self._last_logged.now >= self.log_interval:
            self._log_line(stats)

    def _set_lora_info(self, engine, now: float) -> None:
        def names(groups) -> str:
            return ",".join(sorted({g.lora_request.lora_name for g in groups
                                    if g.lora_request is not None}))

        scheduler, gauge = engine.scheduler, self.metrics.lora_requests_info
        gauge.clear()
        gauge.labels(max_lora=str(engine.config.lora_config.max_loras),
                     running_lora_adapters=names(scheduler.running),
                     waiting_lora_adapters=names(scheduler.waiting)).set(now)

    def _observe_finished(self, output: RequestOutput, now: float) -> None:
        m, t = self.metrics, output.metrics  # the engine's, whatever kind the output is
        m.request_success.labels(finished_reason=t.finish_reason or "abort").inc()
        num_generated = t.num_output_tokens
        m.request_prompt_tokens.observe(len(output.prompt_token_ids))
        m.request_generation_tokens.observe(sum(num_generated))
        m.e2e_request_latency.observe((t.finished_time or now) - t.arrival_time)
        if t.first_scheduled_time is not None:
            m.request_queue_time.observe(t.first_scheduled_time - t.arrival_time)
        if t.first_token_time is not None:
            m.time_to_first_token.observe(t.first_token_time - t.arrival_time)
            longest = max(num_generated, default=0)
            if longest > 1 and t.last_token_time is not None:
                m.time_per_output_token.observe(
                    (t.last_token_time - t.first_token_time) / (longest - 1))

    def _log_line(self, stats: Stats) -> None:
        last = self._last_logged
        elapsed = max(stats.now - last.now, 1e-9)
        logger.info(
            "prompt throughput: %.1f tokens/s, generation throughput: %.1f tokens/s, "
            "running: %d reqs, waiting: %d reqs, KV cache usage: %.1f%%",
            (stats.prompt_tokens_total - last.prompt_tokens_total) / elapsed,
            (stats.generation_tokens_total - last.generation_tokens_total) / elapsed,
            stats.num_running, stats.num_waiting, 100 * stats.kv_cache_usage)
        queries = stats.prefix_cache_queries_total - last.prefix_cache_queries_total
        if queries:
            hits = stats.prefix_cache_hits_total - last.prefix_cache_hits_total
            logger.info("prefix cache hit rate: %.1f%% of %d prompt tokens", 100 * hits / queries,
                        queries)
        drafts = stats.draft_tokens_total - last.draft_tokens_total
        if drafts:
            accepted = stats.accepted_tokens_total - last.accepted_tokens_total
            rounds = max(stats.drafts_total - last.drafts_total, 1)
            logger.info("speculative decoding: %.1f%% of %d draft tokens accepted, %.2f tokens "
                        "a step with drafts", 100 * accepted / drafts, drafts,
                        1 + accepted / rounds)
        self._last_logged = stats
