"""GET /v1/models, and the LoRA adapters served under their own names: those given at the start
(--lora-modules) and, with --allow-runtime-lora-updating, those loaded and unloaded while
serving (POST /v1/load_lora_adapter and /v1/unload_lora_adapter, as vLLM's)."""
from inference_engine.entrypoints.openai.base import OpenAIRequest
from inference_engine.entrypoints.openai.protocol_utility import ModelCard, ModelList
from inference_engine.entrypoints.openai.errors import OpenAIError
from inference_engine.lora.request import LoRARequest


class LoadLoRAAdapterRequest(OpenAIRequest):
    lora_name: str
    lora_path: str


class UnloadLoRAAdapterRequest(OpenAIRequest):
    lora_name: str


class ServedModels:
    """The base model and the adapters; `lora_requests` is the very dict the endpoints read."""

    def __init__(self, engine, base_name: str, lora_requests: dict[str, LoRARequest],
                 runtime_updates: bool):
        self.engine, self.base_name = engine, base_name
        self.lora_requests = lora_requests
        self.runtime_updates = runtime_updates
        self._next_id = max((r.lora_int_id for r in lora_requests.values()), default=0) + 1

    def model_list(self, max_model_len: int) -> ModelList:
        config = self.engine.config.model_config
        bases = [ModelCard(id=name, root=config.model, max_model_len=max_model_len)
                 for name in (self.base_name, *config.served_model_aliases)]
        adapters = [ModelCard(id=name, root=lora.lora_path, parent=self.base_name,
                              max_model_len=max_model_len)
                    for name, lora in self.lora_requests.items()]
        return ModelList(data=[*bases, *adapters])

    async def load(self, request: LoadLoRAAdapterRequest) -> str:
        self._check_updates()
        name = request.lora_name
        config = self.engine.config.model_config
        if name in self.lora_requests or name in (self.base_name, *config.served_model_aliases):
            raise OpenAIError(400, f"The model `{name}` is already served", param="lora_name")
        lora = LoRARequest(name, self._next_id, request.lora_path)
        try:
            await self.engine.add_lora(lora)  # read and checked before it is served
        except ValueError as exc:  # a LoRAError, or LoRA not enabled
            raise OpenAIError(400, str(exc), param="lora_path") from exc
        self._next_id += 1
        self.lora_requests[name] = lora
        return f"Success: LoRA adapter '{name}' added successfully."

    async def unload(self, request: UnloadLoRAAdapterRequest) -> str:
        self._check_updates()
        lora = self.lora_requests.pop(request.lora_name, None)
        if lora is None:
            raise OpenAIError(404, f"The lora adapter '{request.lora_name}' cannot be found.",
                              param="lora_name", code="model_not_found")
        await self.engine.remove_lora(lora.lora_int_id)
        return f"Success: LoRA adapter '{request.lora_name}' removed successfully."

    def _check_updates(self) -> None:
        if not self.runtime_updates:
            raise OpenAIError(400, "loading and unloading LoRA adapters while serving needs "
                              "the server started with --enable-lora and "
                              "--allow-runtime-lora-updating")
