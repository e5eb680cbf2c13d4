"""Hardening: whatever this round's hardening needs in the schema (issue 22); may stay empty.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the collections / operators / hardening work of this round


def downgrade() -> None:
    pass
