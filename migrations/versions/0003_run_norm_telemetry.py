"""run norm telemetry

Runs: norm_histogram (every step's finite pre-clip norm counted in 1/20-decade bins, so a cell's
quantiles can be merged from its runs) and divergence_grad_norm (a diverged run's last computed
pre-clip norm). Runs stored before this revision have neither; the summary says so.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('norm_histogram', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('divergence_grad_norm', sa.Float(precision=53), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('divergence_grad_norm')
        batch_op.drop_column('norm_histogram')
