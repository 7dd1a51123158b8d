"""message-id key of inbound messages
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'


def upgrade() -> None:

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mid_key', sa.String(length=800), nullable=False, server_default=''))
        batch_op.create_index(batch_op.f('ix_inbound_messages_mid_key'), ['mid_key'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_mid_key'))
        batch_op.drop_column('mid_key')


