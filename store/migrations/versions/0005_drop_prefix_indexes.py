"""drop the indexes that a composite index already covers

ix_requests_requester_id is the first column of ix_requests_requester_date, and ix_outbox_to_addr
of ix_outbox_to_created: every query that used them (EXPLAIN) uses the composite one instead, and
each new request or reply no longer updates two more B-trees.
"""
from alembic import op

revision = '0005'
down_revision = '0004'


def upgrade() -> None:
    op.drop_index('ix_requests_requester_id', table_name='requests')
    op.drop_index('ix_outbox_to_addr', table_name='outbox')


def downgrade() -> None:
    op.create_index('ix_outbox_to_addr', 'outbox', ['to_addr'], unique=False)
    op.create_index('ix_requests_requester_id', 'requests', ['requester_id'], unique=False)
