"""a finished cell keeps its steps-to-target estimate, computed once by the results writer

The estimate is a bootstrap of 2,000 resamples of the cell's seeds: at 500 seeds ~8 ms, at 2,500
~26 ms. The summary computed it on the first request after the cell's last run arrived, so a
running sweep's page paid for it on the request path each time a cell finished. The writer that
stores the cell's last outcome now computes it in the same transaction
(service/lifecycle/estimates.py), with the number of runs it is for: runs added to the cell later
(adaptive seeds) make it stale, and the summary computes the estimate itself again, as it does for
a cell that has none (finished before this revision, or by a cancel).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 09:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = [
    sa.Column('steps_for_runs', sa.Integer(), nullable=True),
    sa.Column('steps_median', sa.Float(precision=53), nullable=True),
    sa.Column('steps_low', sa.Float(precision=53), nullable=True),
    sa.Column('steps_high', sa.Float(precision=53), nullable=True),
    sa.Column('steps_unavailable', sa.String(500), nullable=True),
]


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column('cells', column)


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35+), as in 0013: batch mode would rebuild
    # `cells` on SQLite, and dropping the old table cascades to the runs that reference it.
    for column in reversed(COLUMNS):
        op.execute(f'ALTER TABLE cells DROP COLUMN {column.name}')
