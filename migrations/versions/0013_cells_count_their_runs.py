"""cells count their runs and their runs with an outcome, kept by triggers on runs

Every summary request and every poll of a sweep's page counted the sweep's runs: by cell (which
cells changed since the summary kept in memory), and in all (the key of a kept answer). At 100,000
runs those counts read 100,000 index entries each time. Kept on each cell, in the transaction that
inserts a run or gives it an outcome, they are read as one row per cell.

Triggers keep them, so no writer (the results writer, failures, cancels, adaptive rounds, a
search's probes, whatever comes later) can forget to: on PostgreSQL once per statement, from its
transition tables; on SQLite, which has no statement triggers, once per row. A run's outcome is
written once and never cleared; the update trigger counts both directions all the same.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 01:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# What each statement on runs adds to a cell's counts, from the rows it inserted, updated or deleted.
POSTGRES = """
CREATE FUNCTION cells_count_inserted_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cells c SET run_count = c.run_count + n.runs, done_count = c.done_count + n.done
    FROM (SELECT sweep_id, cell_index, count(*) AS runs, count(outcome) AS done FROM new_runs
          GROUP BY sweep_id, cell_index) n
    WHERE c.sweep_id = n.sweep_id AND c.cell_index = n.cell_index;
    RETURN NULL;
END
$$;
CREATE TRIGGER cells_count_inserted_runs AFTER INSERT ON runs REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION cells_count_inserted_runs();

CREATE FUNCTION cells_count_run_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cells c SET done_count = c.done_count + n.done
    FROM (SELECT o.sweep_id, o.cell_index,
                 sum((n.outcome IS NOT NULL)::int - (o.outcome IS NOT NULL)::int) AS done
          FROM old_runs o JOIN new_runs n ON n.id = o.id
          WHERE (o.outcome IS NULL) <> (n.outcome IS NULL)
          GROUP BY o.sweep_id, o.cell_index) n
    WHERE c.sweep_id = n.sweep_id AND c.cell_index = n.cell_index;
    RETURN NULL;
END
$$;
CREATE TRIGGER cells_count_run_outcomes AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION cells_count_run_outcomes();

CREATE FUNCTION cells_count_deleted_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cells c SET run_count = c.run_count - n.runs, done_count = c.done_count - n.done
    FROM (SELECT sweep_id, cell_index, count(*) AS runs, count(outcome) AS done FROM old_runs
          GROUP BY sweep_id, cell_index) n
    WHERE c.sweep_id = n.sweep_id AND c.cell_index = n.cell_index;
    RETURN NULL;
END
$$;
CREATE TRIGGER cells_count_deleted_runs AFTER DELETE ON runs REFERENCING OLD TABLE AS old_runs
    FOR EACH STATEMENT EXECUTE FUNCTION cells_count_deleted_runs();
"""

SQLITE = [
    """CREATE TRIGGER cells_count_inserted_runs AFTER INSERT ON runs FOR EACH ROW
BEGIN
    UPDATE cells SET run_count = run_count + 1, done_count = done_count + (NEW.outcome IS NOT NULL)
    WHERE sweep_id = NEW.sweep_id AND cell_index = NEW.cell_index;
END""",
    """CREATE TRIGGER cells_count_run_outcomes AFTER UPDATE OF outcome ON runs FOR EACH ROW
WHEN (OLD.outcome IS NULL) <> (NEW.outcome IS NULL)
BEGIN
    UPDATE cells SET done_count = done_count + (NEW.outcome IS NOT NULL) - (OLD.outcome IS NOT NULL)
    WHERE sweep_id = NEW.sweep_id AND cell_index = NEW.cell_index;
END""",
    """CREATE TRIGGER cells_count_deleted_runs AFTER DELETE ON runs FOR EACH ROW
BEGIN
    UPDATE cells SET run_count = run_count - 1, done_count = done_count - (OLD.outcome IS NOT NULL)
    WHERE sweep_id = OLD.sweep_id AND cell_index = OLD.cell_index;
END""",
]
TRIGGERS = ['cells_count_inserted_runs', 'cells_count_run_outcomes', 'cells_count_deleted_runs']


def upgrade() -> None:
    op.add_column('cells', sa.Column('run_count', sa.Integer(), server_default='0', nullable=False))
    op.add_column('cells', sa.Column('done_count', sa.Integer(), server_default='0', nullable=False))
    op.execute("""UPDATE cells SET
        run_count = (SELECT count(*) FROM runs r WHERE r.sweep_id = cells.sweep_id AND r.cell_index = cells.cell_index),
        done_count = (SELECT count(r.outcome) FROM runs r
                      WHERE r.sweep_id = cells.sweep_id AND r.cell_index = cells.cell_index)""")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(POSTGRES)
    else:
        for trigger in SQLITE:
            op.execute(trigger)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for trigger in TRIGGERS:
        op.execute(f'DROP TRIGGER {trigger} ON runs; DROP FUNCTION {trigger}()' if postgres
                   else f'DROP TRIGGER {trigger}')
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35+): batch mode would rebuild `cells` on
    # SQLite, and dropping the old table cascades to the runs that reference it.
    op.execute('ALTER TABLE cells DROP COLUMN done_count')
    op.execute('ALTER TABLE cells DROP COLUMN run_count')
