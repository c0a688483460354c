"""schedules: cron-driven sweeps, and what each fire time came to

`schedules` holds a spec with its cron expression, time zone and policies, and the next fire time
a scheduler looks for; `schedule_fires` one row per fire time (a sweep, skipped, missed, manual).
`sweeps.schedule_id` and `scheduled_for` name the fire a sweep was made for, unique together, so a
fire time yields one sweep however many schedulers run. `sweeps` changes in place on both backends
(0006 says why): an index rather than a constraint, and no foreign key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 22:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('cron', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('concurrency', sa.String(length=16), nullable=False),
    sa.Column('catch_up', sa.String(length=16), nullable=False),
    sa.Column('starting_deadline_seconds', sa.Integer(), nullable=False),
    sa.Column('seed_policy', sa.String(length=16), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sweeps_made', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules')),
    sa.UniqueConstraint('name', name=op.f('uq_schedules_name'))
    )
    op.create_index(op.f('ix_schedules_next_fire_at'), 'schedules', ['next_fire_at'], unique=False)

    op.create_table('schedule_fires',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('sweep_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_schedule_fires_schedule_id_schedules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_schedule_fires_sweep_id_sweeps'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_fires')),
    sa.UniqueConstraint('schedule_id', 'scheduled_for', name=op.f('uq_schedule_fires_schedule_id_scheduled_for'))
    )
    op.create_index(op.f('ix_schedule_fires_schedule_id'), 'schedule_fires', ['schedule_id'], unique=False)

    op.add_column('sweeps', sa.Column('schedule_id', sa.Integer(), nullable=True))
    op.add_column('sweeps', sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True))
    op.create_index('uq_sweeps_schedule_fire', 'sweeps', ['schedule_id', 'scheduled_for'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_sweeps_schedule_fire', table_name='sweeps')
    op.drop_column('sweeps', 'scheduled_for')
    op.drop_column('sweeps', 'schedule_id')
    op.drop_index(op.f('ix_schedule_fires_schedule_id'), table_name='schedule_fires')
    op.drop_table('schedule_fires')
    op.drop_index(op.f('ix_schedules_next_fire_at'), table_name='schedules')
    op.drop_table('schedules')
