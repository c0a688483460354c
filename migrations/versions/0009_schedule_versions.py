"""schedule versions: a change of a schedule's spec is a new version, every version kept

`schedule_versions` holds each spec a schedule has had (existing schedules get theirs as version
1), `schedules.version` the current one, and `schedule_fires.schedule_version` the version each
fire's sweep was made of. In place on both backends, as 0006 explains.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('schedule_versions',
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_schedule_versions_schedule_id_schedules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('schedule_id', 'version', name=op.f('pk_schedule_versions'))
    )
    op.add_column('schedule_fires', sa.Column('schedule_version', sa.Integer(), nullable=True))
    op.add_column('schedules', sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
    op.execute("INSERT INTO schedule_versions (schedule_id, version, spec, created_at, created_by) "
               "SELECT id, 1, spec, created_at, created_by FROM schedules")


def downgrade() -> None:
    op.drop_column('schedules', 'version')
    op.drop_column('schedule_fires', 'schedule_version')
    op.drop_table('schedule_versions')
