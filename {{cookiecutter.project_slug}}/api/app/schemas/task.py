import uuid
from typing import Annotated

from pydantic import BaseModel, Field


class TaskAccepted(BaseModel):
    task_id: uuid.UUID


class EchoIn(BaseModel):
    text: Annotated[str, Field(max_length=1000)]
