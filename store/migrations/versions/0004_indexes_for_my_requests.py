"""indexes for my requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 07:16:02.720062
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index('ix_requests_location_date', ['location_id', 'date'], unique=False)
        batch_op.create_index('ix_requests_requester_date', ['requester_id', 'date'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index('ix_requests_requester_date')
        batch_op.drop_index('ix_requests_location_date')


