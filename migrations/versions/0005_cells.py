"""cells: each sweep's grid, resolved once at submit; runs point at their cell

A sweep's cells used to be recomputed from its stored spec wherever they were needed (planning,
`reproduce`, the summary), with each run carrying copies of its cell's learning rate and arm. A
change to that computation would have paired a resumed sweep's runs, or two sweeps' cells, with
the wrong configuration, silently. Now `cells` stores each (sweep, cell_index): the learning rate,
the arm (method, resolved parameters, label) and the full training configuration with its content
hash, and runs reference their cell by (sweep_id, cell_index) instead of copying it.

Upgrading fills `cells` from what the database already holds: the arm and learning rate from each
cell's first run (exactly what every reader used), the configuration from the sweep's stored spec,
which was stored resolved, every default spelled out. The code below builds that configuration
and its hash on its own, as clipsweep did at this revision (TrainConfig.to_dict, config_hash), so
later changes to the application cannot change what this migration writes; a test holds the two
together.

On SQLite, batch mode rebuilds `runs`, which drops the trigger that deletes a run's points with
it (migration 0004); both directions create it again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:00:00
"""
import hashlib
import json
from typing import Any, Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS runs_delete_their_points AFTER DELETE ON runs FOR EACH ROW
BEGIN
    DELETE FROM run_points WHERE run_id = OLD.id;
END
"""
CELL_COLUMNS = ('lr', 'clip_method', 'clip_params', 'clip_label')

sweeps = sa.table('sweeps', sa.column('id', sa.Integer), sa.column('spec', sa.JSON))
runs = sa.table('runs', sa.column('id', sa.Integer), sa.column('sweep_id', sa.Integer),
                sa.column('cell_index', sa.Integer), sa.column('lr', sa.Float), sa.column('clip_method', sa.String),
                sa.column('clip_params', sa.JSON), sa.column('clip_label', sa.String))
cells = sa.table('cells', sa.column('sweep_id', sa.Integer), sa.column('cell_index', sa.Integer),
                 sa.column('lr', sa.Float), sa.column('clip_method', sa.String), sa.column('clip_params', sa.JSON),
                 sa.column('clip_label', sa.String), sa.column('config', sa.JSON), sa.column('config_hash', sa.String))


def train_config(spec: dict[str, Any], lr: float, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A cell's TrainConfig.to_dict() from its sweep's stored (resolved) spec."""
    return {
        'task': spec['task']['name'], 'lr': float(lr), 'task_params': dict(spec['task']['params']),
        'optimizer': dict(spec['optimizer']), 'clipping': {'method': method, 'params': dict(params)},
        'max_steps': spec['budget']['max_steps'], 'batch_size': spec['budget']['batch_size'],
        'divergence': dict(spec['divergence']), 'convergence': dict(spec['convergence']),
        'record_every': spec['record_every'], 'device': spec['resources']['device'],
    }


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, separators=(',', ':'), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _fill_cells(bind: sa.engine.Connection) -> None:
    specs = dict(bind.execute(sa.select(sweeps.c.id, sweeps.c.spec)).all())
    first_runs = sa.select(sa.func.min(runs.c.id)).group_by(runs.c.sweep_id, runs.c.cell_index)
    rows = bind.execute(
        sa.select(runs.c.sweep_id, runs.c.cell_index, *(runs.c[name] for name in CELL_COLUMNS))
        .where(runs.c.id.in_(first_runs)).order_by(runs.c.sweep_id, runs.c.cell_index)).all()
    batch = []
    for sweep_id, cell_index, lr, method, params, label in rows:
        config = train_config(specs[sweep_id], lr, method, params)
        batch.append({'sweep_id': sweep_id, 'cell_index': cell_index, 'lr': lr, 'clip_method': method,
                      'clip_params': params, 'clip_label': label, 'config': config,
                      'config_hash': config_hash(config)})
        if len(batch) == 1000:
            bind.execute(cells.insert(), batch)
            batch = []
    if batch:
        bind.execute(cells.insert(), batch)


def upgrade() -> None:
    op.create_table('cells',
    sa.Column('sweep_id', sa.Integer(), nullable=False),
    sa.Column('cell_index', sa.Integer(), nullable=False),
    sa.Column('lr', sa.Float(precision=53), nullable=False),
    sa.Column('clip_method', sa.String(length=50), nullable=False),
    sa.Column('clip_params', sa.JSON(), nullable=False),
    sa.Column('clip_label', sa.String(length=200), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_cells_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'cell_index', name=op.f('pk_cells'))
    )
    with op.batch_alter_table('cells', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cells_config_hash'), ['config_hash'], unique=False)
    _fill_cells(op.get_bind())
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_runs_sweep_id_cells'), 'cells', ['sweep_id', 'cell_index'],
                                    ['sweep_id', 'cell_index'], ondelete='CASCADE')
        for name in CELL_COLUMNS:
            batch_op.drop_column(name)
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lr', sa.Float(precision=53), nullable=True))
        batch_op.add_column(sa.Column('clip_method', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('clip_params', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('clip_label', sa.String(length=200), nullable=True))
    of_cell = (cells.c.sweep_id == runs.c.sweep_id) & (cells.c.cell_index == runs.c.cell_index)
    op.execute(runs.update().values({
        name: sa.select(cells.c[name]).where(of_cell).scalar_subquery() for name in CELL_COLUMNS}))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.alter_column('lr', existing_type=sa.Float(precision=53), nullable=False)
        batch_op.alter_column('clip_method', existing_type=sa.String(length=50), nullable=False)
        batch_op.alter_column('clip_params', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('clip_label', existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_constraint(batch_op.f('fk_runs_sweep_id_cells'), type_='foreignkey')
    with op.batch_alter_table('cells', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cells_config_hash'))
    op.drop_table('cells')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(SQLITE_TRIGGER)
