"""chat links, callbacks, communications
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'


def upgrade() -> None:

    op.create_table('callback_tokens',
    sa.Column('token', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('telegram_user_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token')
    )
    with op.batch_alter_table('callback_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callback_tokens_request_id'), ['request_id'], unique=False)

    op.create_table('link_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('telegram_user_id', sa.String(length=40), nullable=False),
    sa.Column('chat_id', sa.String(length=40), nullable=False),
    sa.Column('requester_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['requester_id'], ['requesters.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_codes_telegram_user_id'), ['telegram_user_id'], unique=False)

    op.create_table('communications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=300), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('communications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_communications_request_id'), ['request_id'], unique=False)

    with op.batch_alter_table('requesters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounces', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_unique_constraint('uq_requesters_telegram_chat_id', ['telegram_chat_id'])

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_requests_assigned_interpreter_id'), ['assigned_interpreter_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requests_assigned_interpreter_id'))
        batch_op.drop_column('reminded_at')

    with op.batch_alter_table('requesters', schema=None) as batch_op:
        # WARNING: constraint name is None; this directive will fail as
        # rendered.  Add a name, or use a naming convention; see
        # https://alembic.sqlalchemy.org/en/latest/naming.html
        batch_op.drop_constraint('uq_requesters_telegram_chat_id', type_='unique')
        batch_op.drop_column('bounces')

    with op.batch_alter_table('communications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_communications_request_id'))

    op.drop_table('communications')
    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_codes_telegram_user_id'))

    op.drop_table('link_codes')
    with op.batch_alter_table('callback_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callback_tokens_request_id'))

    op.drop_table('callback_tokens')

