import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StrictBool

# E-mail addresses are compared without case: stored and looked up lowercased.
Email = Annotated[EmailStr, AfterValidator(str.lower)]
# Long enough to resist guessing; bounded so hashing cannot be made expensive.
Password = Annotated[str, Field(min_length=8, max_length=128)]


class UserCreate(BaseModel):
    email: Email
    password: Password


class UserUpdate(BaseModel):
    """What a superuser may change on an account; absent fields stay as they are."""

    is_active: StrictBool | None = None
    is_superuser: StrictBool | None = None


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    is_active: bool
    is_superuser: bool
    created_at: datetime
