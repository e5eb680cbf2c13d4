"""Operators: answer feedback, token usage and budgets, admin audit log (issue 19).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the collections / operators / hardening work of this round


def downgrade() -> None:
    pass
