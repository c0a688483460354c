"""how far the runs still training are

`sweeps.live_steps` holds the steps the running sweep's unfinished runs have made so far, as its
worker last wrote them (with the results of the same moment), so progress moves while runs that
end only at their budget train. NULL when no worker trains the sweep. In place on both backends,
as 0006 explains.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 04:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('sweeps', sa.Column('live_steps', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column('sweeps', 'live_steps')
