"""what each sweep ran against

`sweeps.environment` holds the versions its worker trained with (clipsweep, Python, torch, CUDA,
Ray, the task's plugin package), written when a worker claims it; sweeps from before have none.
In place on both backends, as 0006 explains.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('sweeps', sa.Column('environment', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('sweeps', 'environment')
