"""A step's inputs reach the GPU without the host waiting for the kernels queued before them
(async scheduling prepares step N+1 while step N runs)."""
import pytest
import torch

from inference_engine.model_executor.forward_context import AttentionMetadata
from inference_engine.sample.metadata import device_tensor
from inference_engine.worker.model_runner import ModelInput

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")]

BUSY_CYCLES = 2_000_000_000  # about a second of a spinning kernel


def _returns_while_gpu_busy(copy) -> bool:
    torch.cuda.synchronize()
    torch.cuda._sleep(BUSY_CYCLES)  # the running step
    copy()
    busy = not torch.cuda.current_stream().query()
    torch.cuda.synchronize()
    return busy


def _model_input(num_seqs: int = 256, width: int = 128) -> ModelInput:
    attn = AttentionMetadata(torch.arange(num_seqs), torch.zeros(num_seqs, width, dtype=torch.int32),
                             torch.full((num_seqs,), 7, dtype=torch.int32))
    return ModelInput(torch.arange(num_seqs), torch.arange(num_seqs), attn, torch.arange(num_seqs), [])


def test_step_inputs_are_queued_behind_running_kernels_without_waiting():
    device = torch.device("cuda")
    inputs = _model_input()
    assert _returns_while_gpu_busy(lambda: inputs.to(device))
    assert _returns_while_gpu_busy(lambda: device_tensor(list(range(100)), torch.int32, device))


def test_copied_values_are_the_host_values():
    device = torch.device("cuda")
    torch.cuda._sleep(BUSY_CYCLES // 10)
    on_device = _model_input().to(device)
    assert on_device.attn.block_tables.is_cuda and on_device.attn.seq_lens.tolist() == [7] * 256
    assert torch.equal(on_device.input_ids.cpu(), torch.arange(256))
    assert device_tensor([3, 1, 2], torch.float32, device).tolist() == [3.0, 1.0, 2.0]
