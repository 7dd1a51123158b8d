"""drop the index on inbound_messages.sha256, which no query reads

A message's content hash is looked up through `dedupe_key` ('sha:<hash>', unique), never through
this column; its index cost every stored message a random-page write (bench/HISTORY.md).
"""
from alembic import op

revision = '0006'
down_revision = '0005'


def upgrade() -> None:
    op.drop_index('ix_inbound_messages_sha256', table_name='inbound_messages')


def downgrade() -> None:
    op.create_index('ix_inbound_messages_sha256', 'inbound_messages', ['sha256'], unique=False)
