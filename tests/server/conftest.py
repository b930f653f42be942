"""One server on the embedded model for the whole session (loading it costs seconds), and
OpenAI clients pointed at it. Clients never retry, so every error shows as it happened."""
import openai
import pytest

from utils.server import SERVER_ARGS, ServerThread


@pytest.fixture(scope="session")
def server():
    with ServerThread(SERVER_ARGS) as running:
        yield running


@pytest.fixture(scope="session")
def model(server) -> str:
    return server.engine_client.config.model_config.served_model_name


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


@pytest.fixture
def async_client(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                              timeout=300)
