"""api tokens, and who created each sweep

`api_tokens` keeps each token's SHA-256 (never the token), a display prefix, its scopes, and when
it was created, expires, was last used and was revoked. `sweeps.created_by` names the token that
submitted a sweep; sweeps from before, or from a service with auth off, have none.

Both directions change `sweeps` in place: rebuilding it (SQLite's batch mode) would drop the old
table, which with foreign keys on deletes its cells and runs by their cascade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.add_column('sweeps', sa.Column('created_by', sa.String(length=100), nullable=True))
    op.create_index(op.f('ix_sweeps_created_by'), 'sweeps', ['created_by'], unique=False)


def downgrade() -> None:
    # Not batch mode: on SQLite it would rebuild `sweeps`, and dropping the old table with foreign
    # keys on deletes every cell and run by their cascade. SQLite >= 3.35 drops a column in place.
    op.drop_index(op.f('ix_sweeps_created_by'), table_name='sweeps')
    op.drop_column('sweeps', 'created_by')
    op.drop_table('api_tokens')
