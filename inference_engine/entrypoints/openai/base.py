"""The base of every request and response body."""
from pydantic import BaseModel, ConfigDict


class OpenAIBaseModel(BaseModel):
    """Requests ignore unknown fields, as OpenAI's SDKs may send newer ones."""
    model_config = ConfigDict(extra="ignore")
