"""indexes for my requests
"""
from alembic import op

revision = '0004'
down_revision = '0003'


def upgrade() -> None:

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index('ix_requests_location_date', ['location_id', 'date'], unique=False)
        batch_op.create_index('ix_requests_requester_date', ['requester_id', 'date'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index('ix_requests_requester_date')
        batch_op.drop_index('ix_requests_location_date')


