"""run_points without a foreign key; a trigger deletes a run's points with it

PostgreSQL checks a foreign key once per inserted row, and for run_points that check cost more
than everything else in writing a point: the results writer went at about 60k points/s with the
key and 120k+ without (bench/e2e.py's writer measurement). The key guarded two things, and both
still hold:

* No point without its run. The only writer of points (service.results.store_results) inserts
  them in the transaction that has just selected their runs FOR UPDATE, so the runs exist and
  nobody can delete them before the commit.
* A run's points go when the run goes (the key's ON DELETE CASCADE): a trigger on runs deletes
  them, once per statement on PostgreSQL (a transition table of the deleted runs) and per row on
  SQLite. Deleting a sweep deletes its runs by their own cascade, and so their points.

On SQLite, dropping a key rebuilds run_points (a copy of its rows, once). A later migration that
rebuilds `runs` on SQLite (batch mode's copy-and-move) drops this trigger with the old table and
must create it again; test_store's deletion test fails if it does not.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 16:00:00
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TRIGGER = 'runs_delete_their_points'

POSTGRES_TRIGGER = f"""
CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM run_points WHERE run_id IN (SELECT id FROM deleted_runs);
    RETURN NULL;
END
$$;
CREATE TRIGGER {TRIGGER} AFTER DELETE ON runs REFERENCING OLD TABLE AS deleted_runs
    FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}();
"""

SQLITE_TRIGGER = f"""
CREATE TRIGGER {TRIGGER} AFTER DELETE ON runs FOR EACH ROW
BEGIN
    DELETE FROM run_points WHERE run_id = OLD.id;
END
"""


def upgrade() -> None:
    with op.batch_alter_table('run_points', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_run_points_run_id_runs'), type_='foreignkey')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'DROP TRIGGER {TRIGGER} ON runs; DROP FUNCTION {TRIGGER}();')
    else:
        op.execute(f'DROP TRIGGER {TRIGGER}')
    # The key refuses orphans, so none may be left when it comes back.
    op.execute('DELETE FROM run_points WHERE run_id NOT IN (SELECT id FROM runs)')
    with op.batch_alter_table('run_points', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_run_points_run_id_runs'), 'runs', ['run_id'], ['id'],
                                    ondelete='CASCADE')
