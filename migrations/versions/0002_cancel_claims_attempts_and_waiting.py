"""cancel, claims, attempts and waiting

Sweeps: claims (how often claimed), cancel_requested_at, status_detail and not_before (a sweep
waiting for resources). Runs: attempts (trainings started; >1 only after lost infrastructure).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:51:17.904339
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('status_detail', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('not_before', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_column('not_before')
        batch_op.drop_column('status_detail')
        batch_op.drop_column('cancel_requested_at')
        batch_op.drop_column('claims')

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('attempts')

