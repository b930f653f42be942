"""StatLogger turns engine state and finished requests into the Prometheus series, on a
scripted engine state (no model)."""
import logging
from collections import deque
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from inference_engine.config import CacheConfig
from inference_engine.engine.metrics import PREFIX, Metrics, StatLogger
from inference_engine.outputs import CompletionOutput, RequestOutput
from inference_engine.sequence import RequestMetrics


def engine_state(running=0, waiting=0, usage=0.0, prompt=0, generated=0, preemptions=0,
                 cache_queries=0, cache_hits=0, lora_config=None, drafts=0, accepted=0,
                 rounds=0):
    """`running` and `waiting`: counts, or lists of (scripted) request groups."""
    blocks = SimpleNamespace(usage=usage, prefix_cache_queries=cache_queries,
                             prefix_cache_hits=cache_hits)
    queues = [deque(q if isinstance(q, list) else range(q)) for q in (running, waiting)]
    scheduler = SimpleNamespace(running=queues[0], waiting=queues[1],
                                block_manager=blocks, num_preemptions_total=preemptions)
    return SimpleNamespace(scheduler=scheduler, num_prompt_tokens_total=prompt,
                           num_generation_tokens_total=generated,
                           num_drafts_total=rounds, num_draft_tokens_total=drafts,
                           num_accepted_tokens_total=accepted,
                           config=SimpleNamespace(lora_config=lora_config))


def finished_output(num_tokens: int, reason: str = "length") -> RequestOutput:
    times = RequestMetrics(arrival_time=100.0, first_scheduled_time=100.5,
                           first_token_time=101.0, last_token_time=101.0 + 0.2 * (num_tokens - 1),
                           finished_time=102.0, num_output_tokens=[num_tokens],
                           finish_reason=reason)  # the engine fills these in as it finishes
    completion = CompletionOutput(0, "x", [1] * num_tokens, None, None, reason)
    return RequestOutput("r", "p", [1, 2, 3], None, [completion], True, times)


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def stat_logger(registry):
    cache = CacheConfig(block_size=16)
    cache.num_blocks = 100
    return StatLogger(Metrics(registry, cache, max_model_len=512), log_interval=3600)


def value(registry, name, **labels):
    return registry.get_sample_value(PREFIX + name, labels or None)


def test_gauges_and_counters_follow_the_engine(registry, stat_logger):
    stat_logger.log(engine_state(running=2, waiting=1, usage=0.25, prompt=10, generated=2), [])
    stat_logger.log(engine_state(running=1, usage=0.5, prompt=10, generated=5, preemptions=1,
                                 cache_queries=40, cache_hits=16, drafts=12, accepted=7,
                                 rounds=4), [],
                   num_aborted=2)
    assert value(registry, "num_requests_running") == 1
    assert value(registry, "num_requests_waiting") == 0
    assert value(registry, "kv_cache_usage_perc") == 0.5
    assert value(registry, "prompt_tokens_total") == 10
    assert value(registry, "generation_tokens_total") == 5
    assert value(registry, "num_preemptions_total") == 1
    assert value(registry, "prefix_cache_queries_total") == 40
    assert value(registry, "prefix_cache_hits_total") == 16
    assert value(registry, "spec_decode_num_drafts_total") == 4
    assert value(registry, "spec_decode_num_draft_tokens_total") == 12
    assert value(registry, "spec_decode_num_accepted_tokens_total") == 7
    assert value(registry, "request_success_total", finished_reason="abort") == 2
    assert value(registry, "cache_config_info", block_size="16", num_blocks="100",
                 gpu_memory_utilization="0.9", cpu_kv_cache_space_gib="4.0",
                 watermark="0.01", cache_dtype="auto", enable_prefix_caching="False") == 1


def test_finished_requests_feed_the_histograms(registry, stat_logger):
    stat_logger.log(engine_state(), [finished_output(6), finished_output(1, "stop")])
    assert value(registry, "request_success_total", finished_reason="length") == 1
    assert value(registry, "request_success_total", finished_reason="stop") == 1
    assert value(registry, "time_to_first_token_seconds_sum") == pytest.approx(2.0)
    assert value(registry, "e2e_request_latency_seconds_sum") == pytest.approx(4.0)
    assert value(registry, "request_queue_time_seconds_sum") == pytest.approx(1.0)
    # One request had a single token: no time between tokens to observe.
    assert value(registry, "time_per_output_token_seconds_count") == 1
    assert value(registry, "time_per_output_token_seconds_sum") == pytest.approx(0.2)
    assert value(registry, "request_prompt_tokens_sum") == 6
    assert value(registry, "request_generation_tokens_sum") == 7
    assert value(registry, "request_generation_tokens_bucket", le="5.0") == 1


def test_a_finished_embedding_counts_as_stopped(registry, stat_logger):
    embedding = RequestOutput("e", "p", [1, 2], None, [], True, RequestMetrics(arrival_time=1.0, finish_reason="stop"),
                              embedding=[0.6, 0.8])
    stat_logger.log(engine_state(), [embedding])
    assert value(registry, "request_success_total", finished_reason="stop") == 1
    assert value(registry, "request_success_total", finished_reason="abort") is None
    assert value(registry, "request_generation_tokens_sum") == 0


def test_throughput_is_logged_every_interval(stat_logger, caplog):
    stat_logger.log_interval = 0.0
    with caplog.at_level(logging.INFO, logger="inference_engine.engine.metrics"):
        stat_logger.log(engine_state(running=3, waiting=2, usage=0.125, prompt=50,
                                     generated=9), [])
    line = caplog.records[-1].getMessage()
    assert "prompt throughput" in line and "generation throughput" in line
    assert "running: 3 reqs, waiting: 2 reqs, KV cache usage: 12.5%" in line


def test_prefix_cache_hit_rate_is_logged_when_prompts_were_looked_up(stat_logger, caplog):
    stat_logger.log_interval = 0.0
    with caplog.at_level(logging.INFO, logger="inference_engine.engine.metrics"):
        stat_logger.log(engine_state(prompt=50, cache_queries=200, cache_hits=150), [])
    assert caplog.records[-1].getMessage() == "prefix cache hit rate: 75.0% of 200 prompt tokens"


def test_draft_acceptance_is_logged_with_speculative_decoding(stat_logger, caplog):
    stat_logger.log_interval = 0.0
    with caplog.at_level(logging.INFO, logger="inference_engine.engine.metrics"):
        stat_logger.log(engine_state(generated=30, drafts=40, accepted=10, rounds=10), [])
    assert caplog.records[-1].getMessage() == (
        "speculative decoding: 25.0% of 40 draft tokens accepted, 2.00 tokens a step with drafts")


def test_lora_requests_info_names_the_running_and_waiting_adapters(registry, stat_logger):
    from inference_engine.config import LoRAConfig
    from inference_engine.lora import LoRARequest

    def group(name):
        return SimpleNamespace(lora_request=LoRARequest(name, 1, "/x") if name else None)

    stat_logger.log(engine_state(running=[group("b"), group("a"), group(None), group("a")],
                                 waiting=[group("c")], lora_config=LoRAConfig(max_loras=2)), [])
    labels = {"max_lora": "2", "running_lora_adapters": "a,b", "waiting_lora_adapters": "c"}
    assert registry.get_sample_value(PREFIX + "lora_requests_info", labels) > 0
    stat_logger.log(engine_state(lora_config=LoRAConfig(max_loras=2)), [])  # all done
    assert registry.get_sample_value(PREFIX + "lora_requests_info", labels) is None
    assert registry.get_sample_value(PREFIX + "lora_requests_info", {
        "max_lora": "2", "running_lora_adapters": "", "waiting_lora_adapters": ""}) > 0
