"""sweeps, runs and run points

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 06:49:09.253137
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:

    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('runs_total', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps'))
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_status'), ['status'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sweep_id', sa.Integer(), nullable=False),
    sa.Column('cell_index', sa.Integer(), nullable=False),
    sa.Column('lr', sa.Float(precision=53), nullable=False),
    sa.Column('clip_method', sa.String(length=50), nullable=False),
    sa.Column('clip_params', sa.JSON(), nullable=False),
    sa.Column('clip_label', sa.String(length=200), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('trigger', sa.String(length=32), nullable=True),
    sa.Column('diverged_at_step', sa.Integer(), nullable=True),
    sa.Column('converged_at_step', sa.Integer(), nullable=True),
    sa.Column('steps_done', sa.Integer(), nullable=True),
    sa.Column('initial_loss', sa.Float(precision=53), nullable=True),
    sa.Column('final_loss', sa.Float(precision=53), nullable=True),
    sa.Column('min_loss', sa.Float(precision=53), nullable=True),
    sa.Column('final_eval_loss', sa.Float(precision=53), nullable=True),
    sa.Column('clipped_steps', sa.Integer(), nullable=True),
    sa.Column('max_grad_norm', sa.Float(precision=53), nullable=True),
    sa.Column('device', sa.String(length=50), nullable=True),
    sa.Column('node', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_runs_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('sweep_id', 'cell_index', 'seed', name=op.f('uq_runs_sweep_id_cell_index_seed'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_sweep_id'), ['sweep_id'], unique=False)

    op.create_table('run_points',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('loss', sa.Float(precision=53), nullable=True),
    sa.Column('grad_norm', sa.Float(precision=53), nullable=True),
    sa.Column('clipped', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_points_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'step', name=op.f('pk_run_points'))
    )



def downgrade() -> None:

    op.drop_table('run_points')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_sweep_id'))

    op.drop_table('runs')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_status'))

    op.drop_table('sweeps')

