"""Task records learn when their tasks expire and whether they were revoked,
so that a record that no worker will ever finish is decided by the API.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: records written before this revision have no known expiry,
    # and are never declared LOST.
    op.add_column("task_records", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("task_records", sa.Column("revoked_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("task_records", "revoked_at")
    op.drop_column("task_records", "expires_at")
